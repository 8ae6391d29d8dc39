"""Shared fixtures: an environment without the user's settings, the folder of real MovieLens releases
(tests skip cleanly when it is absent) and an isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.isolation import REPO, isolated

SHARED_DATASETS = Path(os.environ.get("RECSYS_SHARED_DATASETS", REPO.parent / "shared" / "datasets")).resolve()


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """The whole session runs without the user's MLFLOW_*, DVC_*, RECSYS_* settings (tests.isolation).
    Session scope and autouse put it before every other fixture, module- and session-scoped ones too."""
    wanted = isolated(os.environ, tmp_path_factory.mktemp("environment"))
    with pytest.MonkeyPatch.context() as patch:
        for name in set(os.environ) - set(wanted):
            patch.delenv(name)
        for name, value in wanted.items():
            if os.environ.get(name) != value:
                patch.setenv(name, value)
        yield


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
