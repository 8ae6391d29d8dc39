"""Stage train_content: outputs, MLflow run, batched curves, nothing partial on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import parse_params
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError
from pipeline.models.content import ContentModel
from pipeline.paths import Layout
from pipeline.stages import train_content
from pipeline.stages.train_content import CurveLogger, loss_table
from tests.factories import content_layout, training_outputs, training_result
from tests.stages.mlflow_views import check_training_run

CONTENT = {
    "user_layers": [8], "item_layers": [8], "embedding_dim": 4, "learning_rate": 0.05,
    "epochs": 12, "batch_size": 64, "validation_fraction": 0.2, "patience": 1, "seed": 3,
}  # fmt: skip
PARAMS = {"content": CONTENT, "mlflow": {"experiment": "stage-test"}}
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "abc123"}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return content_layout(tmp_path, DATASET)


def test_stage_writes_model_metrics_curve_and_one_tracked_run(layout: Layout):
    train_content.run(parse_params(PARAMS), layout)

    metrics = training_result(layout, "content")
    curve = pd.read_csv(layout.learning_curve("content"))
    assert list(curve.columns) == ["epoch", "loss", "val_loss"]
    assert curve["epoch"].tolist() == list(range(1, metrics["epochs_run"] + 1))
    assert metrics["epochs_run"] < CONTENT["epochs"]  # patience 1 stopped it
    assert metrics["val_loss"] == pytest.approx(curve["val_loss"].min())
    assert metrics["loss"] == pytest.approx(curve["loss"].iloc[metrics["best_epoch"] - 1])
    assert metrics["user_tower_params"] == 21 * 8 + 8 + 8 * 4 + 4 and metrics["movie_tower_params"] == 22 * 8 + 8 + 8 * 4 + 4
    assert metrics["parameter_count"] == metrics["user_tower_params"] + metrics["movie_tower_params"]
    assert metrics["seconds"] > 0
    # what evaluate and promote check: the same keys as train_cofi.json (one helper writes both)
    assert (metrics["dataset_fingerprint"], metrics["data_source"]) == ("abc123", "synthetic")

    model = ContentModel.load(layout.model_dir("content"))
    assert {p.name for p in layout.model_dir("content").iterdir()} == {"content.keras", "content.npz", "content.json"}

    client = MlflowClient()
    run = client.get_run(metrics["mlflow_run_id"])
    shared = check_training_run(run.info.run_id, "content", "content", "rating", pd.read_parquet(layout.train), DATASET)
    assert {key: shared[key] for key in ("latent_size", "learning_rate", "epochs", "regularization", "seed")} == {
        "latent_size": "4",
        "learning_rate": "0.05",
        "epochs": "12",
        "regularization": "none",
        "seed": "3",
    }
    assert shared["parameter_count"] == str(metrics["parameter_count"])
    assert run.data.params["content.batch_size"] == "64"
    assert run.data.metrics["train_val_loss"] == pytest.approx(metrics["val_loss"])
    assert len(client.get_metric_history(run.info.run_id, "curve_train_loss")) == metrics["epochs_run"]
    history = client.get_metric_history(run.info.run_id, "curve_val_loss")
    assert [m.step for m in history] == curve["epoch"].tolist()
    np.testing.assert_allclose([m.value for m in history], curve["val_loss"], rtol=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"content_loss.png", "model_summary.txt"} <= artifacts

    train = pd.read_parquet(layout.train)
    pairs = pd.concat([train[[USER, MOVIE]].head(5), pd.DataFrame({USER: [999_999], MOVIE: [999_999]})], ignore_index=True)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/content")
    np.testing.assert_allclose(pyfunc.predict(pairs), model.predict(pairs), rtol=1e-6)


def test_missing_features_is_a_data_error_and_writes_nothing(layout: Layout):
    for name in ("scalers.json",):
        (layout.features / name).unlink()
    with pytest.raises(DataError, match="scalers.json: not found"):
        train_content.run(parse_params(PARAMS), layout)
    assert not any(path.exists() for path in training_outputs(layout, "content"))


def test_a_bad_features_table_fails_before_anything_is_written(layout: Layout):
    users = pd.read_parquet(layout.features / "users.parquet")
    users.loc[0, "avg_Drama"] = np.nan
    users.to_parquet(layout.features / "users.parquet", index=False)
    with pytest.raises(DataError, match="column 'avg_Drama'"):
        train_content.run(parse_params(PARAMS), layout)
    assert not any(path.exists() for path in training_outputs(layout, "content"))


def test_a_dataset_json_without_a_fingerprint_stops_before_training(layout: Layout):
    meta = json.loads(layout.raw_meta.read_text())
    layout.raw_meta.write_text(json.dumps({k: v for k, v in meta.items() if k != "fingerprint"}))
    with pytest.raises(DataError, match="data/raw/dataset.json: needs a non-empty string 'fingerprint'"):
        train_content.run(parse_params(PARAMS), layout)
    assert not any(path.exists() for path in training_outputs(layout, "content"))


def test_curve_logger_hands_over_epochs_in_batches():
    calls: list[tuple[dict, list[int]]] = []
    logger = CurveLogger(lambda values, steps: calls.append((values, steps)), every=2)
    for epoch in range(5):
        logger.on_epoch_end(epoch, {"loss": 10.0 - epoch, "val_loss": 20.0 - epoch})
    logger.on_train_end()
    assert [steps for _, steps in calls] == [[1, 2], [3, 4], [5]]
    assert calls[0][0] == {"train_loss": [10.0, 9.0], "val_loss": [20.0, 19.0]}


def test_loss_table_without_validation_has_an_empty_val_loss_column():
    table = loss_table({"loss": [0.5, 0.4]})
    assert table["epoch"].tolist() == [1, 2] and table["val_loss"].isna().all()
