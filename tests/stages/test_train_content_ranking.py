"""Stage `train_content_ranking` on tiny data: its outputs, its MLflow run and its pyfunc (ranking scores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import parse_params
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError
from pipeline.models.content_retrieval import ContentRankingModel
from pipeline.paths import Layout
from pipeline.stages.train_content_ranking import NAME, run
from tests.factories import content_layout, training_outputs, training_result
from tests.stages.mlflow_views import check_training_run

EPOCHS = 3
TINY = {"user_layers": [8], "item_layers": [8], "embedding_dim": 4, "id_dim": 4, "epochs": EPOCHS, "batch_size": 64, "history_length": 16}
PARAMS = parse_params({"content_ranking": TINY, "mlflow": {"experiment": "content-rank-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "beef"}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return content_layout(tmp_path, DATASET)


def test_writes_model_metrics_loss_curve_and_an_mlflow_run_with_a_scoring_pyfunc(layout):
    run(PARAMS, layout)
    model = ContentRankingModel.load(layout.model_dir(NAME))
    metrics = training_result(layout, NAME)
    assert metrics["epochs_run"] == EPOCHS and metrics["final_loss"] == pytest.approx(model.history["loss"][-1])
    assert metrics["parameter_count"] == model.parameter_count > 0 and metrics["seconds"] > 0
    assert (metrics["dataset_fingerprint"], metrics["data_source"]) == ("beef", "synthetic")
    curve = pd.read_csv(layout.learning_curve(NAME))
    assert list(curve.columns) == ["iteration", "loss"] and curve["iteration"].tolist() == list(range(EPOCHS))
    np.testing.assert_allclose(curve["loss"], model.history["loss"])

    client = MlflowClient(tracking.tracking_uri())
    mlflow_run = client.get_run(metrics["mlflow_run_id"])
    shared = check_training_run(metrics["mlflow_run_id"], NAME, "content", "ranking", pd.read_parquet(layout.train), DATASET)
    assert (shared["latent_size"], shared["learning_rate"], shared["regularization"]) == ("4", "0.005", "none")
    assert shared["parameter_count"] == str(model.parameter_count)
    assert mlflow_run.data.params["content_ranking.embedding_dim"] == "4"
    assert sorted(m.step for m in client.get_metric_history(metrics["mlflow_run_id"], "curve_train_loss")) == list(range(EPOCHS))
    assert "content_ranking_loss.png" in {a.path for a in client.list_artifacts(metrics["mlflow_run_id"])}

    pairs = pd.read_parquet(layout.train)[[USER, MOVIE]].head(5).reset_index(drop=True)
    pyfunc = mlflow.pyfunc.load_model(metrics["model_uri"])
    np.testing.assert_allclose(np.asarray(pyfunc.predict(pairs)), model.predict(pairs), rtol=1e-6)


def test_missing_features_stop_the_stage_naming_the_features_stage_and_nothing_is_written(layout):
    shutil.rmtree(layout.features)
    with pytest.raises(DataError, match=r"data/features.*features"):
        run(PARAMS, layout)
    assert not any(path.exists() for path in training_outputs(layout, NAME))
