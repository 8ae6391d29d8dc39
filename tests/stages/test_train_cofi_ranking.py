"""Stage `train_cofi_ranking` on tiny data: its outputs, its MLflow run and its pyfunc (ranking scores)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import paths, tracking
from pipeline.config import parse_params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.stages.train_cofi_ranking import COST_CSV, METRICS_FILE, MODEL_DIR, run
from tests.factories import low_rank_ratings

ITERATIONS = 4
PARAMS = parse_params({"cofi_ranking": {"num_features": 3, "iterations": ITERATIONS}, "mlflow": {"experiment": "rank-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "c0ffee"}
OUTPUTS = (MODEL_DIR, METRICS_FILE, COST_CSV)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    for folder in (paths.RAW, paths.SPLIT):
        folder.mkdir(parents=True)
    movies.to_parquet(paths.RAW_MOVIES, index=False)
    ratings.to_parquet(paths.TRAIN, index=False)
    paths.RAW_META.write_text(json.dumps(DATASET))
    return tmp_path


def test_writes_model_metrics_cost_curve_and_an_mlflow_run_with_a_scoring_pyfunc(workdir):
    run(PARAMS)
    model = CofiRankingModel.load(MODEL_DIR)
    metrics = json.loads(METRICS_FILE.read_text())
    assert metrics["iterations_run"] == ITERATIONS and metrics["final_cost"] == pytest.approx(model.history.cost[-1])
    assert metrics["parameter_count"] == model.parameter_count and metrics["seconds"] > 0
    assert (metrics["dataset_fingerprint"], metrics["data_source"]) == ("c0ffee", "synthetic")
    assert metrics["model_uri"]  # loaded below
    curve = pd.read_csv(COST_CSV)
    assert list(curve.columns) == ["iteration", "cost"] and curve["iteration"].tolist() == list(range(ITERATIONS))
    np.testing.assert_allclose(curve["cost"], model.history.cost)

    client = MlflowClient(tracking.tracking_uri())
    mlflow_run = client.get_run(metrics["mlflow_run_id"])
    assert mlflow_run.info.run_name == "cofi_ranking" and mlflow_run.data.tags["model_family"] == "cofi_ranking"
    assert mlflow_run.data.params["cofi_ranking.num_features"] == "3"
    history = client.get_metric_history(metrics["mlflow_run_id"], "train_cost")
    assert sorted(m.step for m in history) == list(range(ITERATIONS))
    assert "cofi_ranking_cost.png" in {a.path for a in client.list_artifacts(metrics["mlflow_run_id"])}

    train = pd.read_parquet(paths.TRAIN)
    pairs = train[[USER, MOVIE]].head(5).reset_index(drop=True)
    pyfunc = mlflow.pyfunc.load_model(metrics["model_uri"])
    np.testing.assert_allclose(np.asarray(pyfunc.predict(pairs)), model.predict(pairs))


def test_bad_ratings_stop_the_stage_and_nothing_is_written(workdir):
    train = pd.read_parquet(paths.TRAIN)
    train.loc[2, RATING] = np.nan
    train.to_parquet(paths.TRAIN, index=False)
    with pytest.raises(DataError, match=r"data/split/train.parquet: column 'rating'"):
        run(PARAMS)
    assert not any(path.exists() for path in OUTPUTS)
