"""Shared fixtures: the folder of real MovieLens releases (tests skip cleanly when it is absent) and an
isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RECSYS_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches the user's mlflow.db: each test gets its own tracking store."""
    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")


@pytest.fixture
def shared_datasets() -> Path:
    """The folder holding ml-latest-small/ ($RECSYS_SHARED_DATASETS, else shared/datasets beside the
    repository's folder), or skip when there is none."""
    if not (SHARED_DATASETS / "ml-latest-small" / "ratings.csv").is_file():
        pytest.skip(f"MovieLens mirror not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
