"""What every training stage's MLflow run must hold, read back through MlflowClient: its name and
tags, the train split as a training input, the family-independent params, and metric names that
follow the curve_ / test_ / train_ scheme."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from pipeline import tracking

SHARED = ("family", "objective", "latent_size", "learning_rate", "epochs", "regularization", "seed", "parameter_count")
SHARED += ("data_source", "split_strategy")
PREFIXES = ("curve_", "test_", "train_")


def inputs(run: Any) -> dict[str, dict[str, Any]]:
    """mlflow.data.context -> the logged dataset (name, digest, source, profile)."""
    found = {}
    for entry in run.inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in entry.tags}["mlflow.data.context"]
        dataset = entry.dataset
        found[context] = {
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": dataset.source_type,
            "source": json.loads(dataset.source),
            "profile": json.loads(dataset.profile),
        }
    return found


def check_training_run(run_id: str, model: str, family: str, objective: str, train: pd.DataFrame, dataset: dict) -> dict[str, str]:
    """Asserts what a training run of `model` holds; returns its shared params."""
    run = MlflowClient().get_run(run_id)
    source = dataset["source"]
    assert run.info.run_name == f"{family}-{objective}@{source}"
    tags = run.data.tags
    assert (tags["model_family"], tags["objective"], tags["model"]) == (family, objective, model)
    assert (tags["data_source"], tags["dataset_fingerprint"]) == (source, dataset["fingerprint"])
    ratings = train[["user_id", "movie_id", "rating"]]
    training = inputs(run)["training"]
    assert training["name"] == f"{source}/random/train" and training["digest"] == tracking.ratings_digest(ratings)
    assert (training["source_type"], training["source"]) == ("recsys", {"data_source": source})
    assert training["profile"]["num_rows"] == len(train) and training["profile"]["num_users"] == train["user_id"].nunique()
    assert training["profile"]["dataset_fingerprint"] == dataset["fingerprint"]
    params = run.data.params
    shared = {key: params[key] for key in SHARED}
    assert (shared["family"], shared["objective"], shared["data_source"], shared["split_strategy"]) == (family, objective, source, "random")
    assert not [key for key in run.data.metrics if not key.startswith(PREFIXES)]
    assert any(key.startswith("curve_") for key in run.data.metrics) and "train_seconds" in run.data.metrics
    return shared
