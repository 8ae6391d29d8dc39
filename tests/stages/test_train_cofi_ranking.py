"""Stage `train_cofi_ranking` on tiny data: its outputs, its MLflow run and its pyfunc (ranking scores)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import parse_params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.paths import Layout
from pipeline.stages.train_cofi_ranking import NAME, run
from tests.factories import training_layout, training_outputs, training_result
from tests.stages.mlflow_views import check_training_run

ITERATIONS = 4
PARAMS = parse_params({"cofi_ranking": {"num_features": 3, "iterations": ITERATIONS}, "mlflow": {"experiment": "rank-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "c0ffee"}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return training_layout(tmp_path, DATASET)


def test_writes_model_metrics_cost_curve_and_an_mlflow_run_with_a_scoring_pyfunc(layout):
    run(PARAMS, layout)
    model = CofiRankingModel.load(layout.model_dir(NAME))
    metrics = training_result(layout, NAME)
    assert metrics["iterations_run"] == ITERATIONS and metrics["final_cost"] == pytest.approx(model.history.cost[-1])
    assert metrics["parameter_count"] == model.parameter_count and metrics["seconds"] > 0
    assert (metrics["dataset_fingerprint"], metrics["data_source"]) == ("c0ffee", "synthetic")
    assert metrics["model_uri"]  # loaded below
    curve = pd.read_csv(layout.learning_curve(NAME))
    assert list(curve.columns) == ["iteration", "cost"] and curve["iteration"].tolist() == list(range(ITERATIONS))
    np.testing.assert_allclose(curve["cost"], model.history.cost)

    client = MlflowClient(tracking.tracking_uri())
    mlflow_run = client.get_run(metrics["mlflow_run_id"])
    shared = check_training_run(metrics["mlflow_run_id"], NAME, "cofi", "ranking", pd.read_parquet(layout.train), DATASET)
    assert (shared["learning_rate"], shared["latent_size"], shared["epochs"]) == ("als", "3", str(ITERATIONS))
    assert shared["parameter_count"] == str(model.parameter_count)
    assert mlflow_run.data.params["cofi_ranking.num_features"] == "3"
    history = client.get_metric_history(metrics["mlflow_run_id"], "curve_train_cost")
    assert sorted(m.step for m in history) == list(range(ITERATIONS))
    assert "cofi_ranking_cost.png" in {a.path for a in client.list_artifacts(metrics["mlflow_run_id"])}

    train = pd.read_parquet(layout.train)
    pairs = train[[USER, MOVIE]].head(5).reset_index(drop=True)
    pyfunc = mlflow.pyfunc.load_model(metrics["model_uri"])
    np.testing.assert_allclose(np.asarray(pyfunc.predict(pairs)), model.predict(pairs))


def test_bad_ratings_stop_the_stage_and_nothing_is_written(layout):
    train = pd.read_parquet(layout.train)
    train.loc[2, RATING] = np.nan
    train.to_parquet(layout.train, index=False)
    with pytest.raises(DataError, match=r"data/split/train.parquet: column 'rating'"):
        run(PARAMS, layout)
    assert not any(path.exists() for path in training_outputs(layout, NAME))
