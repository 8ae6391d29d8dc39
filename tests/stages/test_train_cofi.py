"""Stage `train_cofi` in a temporary folder: outputs, MLflow run (params, tags, cost curve, figure,
pyfunc model), and bad input that leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import parse_params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError
from pipeline.models.cofi import CofiModel
from pipeline.paths import Layout
from pipeline.stages.train_cofi import run
from tests.factories import training_layout, training_outputs, training_result
from tests.stages.mlflow_views import check_training_run

K, ITERATIONS = 3, 6
PARAMS = parse_params({"cofi": {"num_features": K, "iterations": ITERATIONS}, "mlflow": {"experiment": "cofi-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "c0ffee"}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return training_layout(tmp_path, DATASET)


def test_writes_model_metrics_cost_curve_and_an_mlflow_run(layout):
    run(PARAMS, layout)
    train = pd.read_parquet(layout.train)
    model = CofiModel.load(layout.model_dir("cofi"))
    metrics = training_result(layout, "cofi")
    n_users, n_movies = train[USER].nunique(), train[MOVIE].nunique()
    assert metrics["iterations_run"] == ITERATIONS
    assert metrics["parameter_count"] == (n_users + n_movies) * K + n_users
    assert metrics["final_cost"] == pytest.approx(model.history.cost[-1])
    expected_rmse = np.sqrt(np.mean((model.predict(train) - train[RATING]) ** 2))
    assert metrics["train_rmse"] == pytest.approx(expected_rmse)
    assert metrics["seconds"] > 0
    assert (metrics["dataset_fingerprint"], metrics["data_source"]) == ("c0ffee", "synthetic")
    # DVC's metrics file: the numbers the params and data determine; the rest in the record beside it
    assert set(json.loads(layout.training_metrics("cofi").read_text())) == {"final_cost", "train_rmse", "iterations_run", "parameter_count"}
    recorded = json.loads(layout.training_record("cofi").read_text())
    assert set(recorded) == {"seconds", "mlflow_run_id", "model_uri", "dataset_fingerprint", "data_source"}
    curve = pd.read_csv(layout.learning_curve("cofi"))
    assert list(curve.columns) == ["iteration", "cost"]
    assert curve["iteration"].tolist() == list(range(ITERATIONS))
    np.testing.assert_allclose(curve["cost"], model.history.cost)

    client = MlflowClient(tracking.tracking_uri())
    mlflow_run = client.get_run(metrics["mlflow_run_id"])
    shared = check_training_run(metrics["mlflow_run_id"], "cofi", "cofi", "rating", train, DATASET)
    assert shared == {
        **shared,
        "latent_size": str(K),
        "learning_rate": "0.1",
        "epochs": str(ITERATIONS),
        "regularization": "0.15",
        "seed": "1234",
        "parameter_count": str(metrics["parameter_count"]),
    }
    assert client.get_experiment(mlflow_run.info.experiment_id).name == "cofi-test"
    logged = mlflow_run.data.params
    assert logged["cofi.num_features"] == str(K) and logged["cofi.cost"] == "mean"
    assert {k: logged[k] for k in ("n_users", "n_movies", "n_train_ratings", "parameter_count")} == {
        "n_users": str(n_users),
        "n_movies": str(n_movies),
        "n_train_ratings": str(len(train)),
        "parameter_count": str(metrics["parameter_count"]),
    }
    assert mlflow_run.data.metrics["train_rmse"] == pytest.approx(metrics["train_rmse"])
    assert mlflow_run.data.metrics["train_final_cost"] == pytest.approx(metrics["final_cost"])
    assert mlflow_run.data.metrics["train_seconds"] == pytest.approx(metrics["seconds"])
    history = client.get_metric_history(metrics["mlflow_run_id"], "curve_train_cost")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(ITERATIONS))
    artifacts = {a.path for a in client.list_artifacts(metrics["mlflow_run_id"])}
    assert "cofi_cost.png" in artifacts


def test_the_logged_pyfunc_predicts_clipped_stars_with_fallbacks(layout):
    run(PARAMS, layout)
    run_id = training_result(layout, "cofi")["mlflow_run_id"]
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/cofi")
    train = pd.read_parquet(layout.train)
    pairs = pd.concat([train[[USER, MOVIE]].head(5), pd.DataFrame({USER: [999_999], MOVIE: [999_999]})], ignore_index=True)
    predicted = np.asarray(pyfunc.predict(pairs))
    np.testing.assert_allclose(predicted, CofiModel.load(layout.model_dir("cofi")).predict(pairs))
    assert predicted[-1] == pytest.approx(train[RATING].mean())
    assert ((predicted >= 0.5) & (predicted <= 5.0)).all()


def test_a_diverging_cost_leaves_the_previous_outputs_untouched(layout):
    run(PARAMS, layout)
    before = {
        path: sorted(p.read_bytes() for p in ([path] if path.is_file() else path.rglob("*"))) for path in training_outputs(layout, "cofi")
    }
    diverging = parse_params({"cofi": {"num_features": K, "learning_rate": 1e20}, "mlflow": {"experiment": "cofi-test"}})
    with pytest.raises(ModelError, match="cost became"):
        run(diverging, layout)
    after = {
        path: sorted(p.read_bytes() for p in ([path] if path.is_file() else path.rglob("*"))) for path in training_outputs(layout, "cofi")
    }
    assert after == before


def test_nan_ratings_stop_the_stage_naming_the_file_and_nothing_is_written(layout):
    train = pd.read_parquet(layout.train)
    train.loc[2, RATING] = np.nan
    train.to_parquet(layout.train, index=False)
    with pytest.raises(DataError, match=r"data/split/train.parquet: column 'rating': 1 row"):
        run(PARAMS, layout)
    assert not any(path.exists() for path in training_outputs(layout, "cofi"))


def test_an_empty_train_split_is_a_clear_error(layout):
    pd.read_parquet(layout.train).iloc[:0].to_parquet(layout.train, index=False)
    with pytest.raises(DataError, match="train.parquet: no ratings"):
        run(PARAMS, layout)
    assert not any(path.exists() for path in training_outputs(layout, "cofi"))


def test_missing_inputs_name_the_stage_to_run(layout):
    layout.train.unlink()
    with pytest.raises(DataError, match="train.parquet: not found; run the split stage"):
        run(PARAMS, layout)


@pytest.mark.parametrize("key", ["fingerprint", "source"])
def test_a_dataset_json_without_fingerprint_or_source_stops_before_training(layout, key):
    layout.raw_meta.write_text(json.dumps({k: v for k, v in DATASET.items() if k != key}))
    with pytest.raises(DataError, match=rf"data/raw/dataset.json: needs a non-empty string '{key}' \(got None\); re-run the ingest stage"):
        run(PARAMS, layout)
    assert not any(path.exists() for path in training_outputs(layout, "cofi"))
