"""Shared fixtures: an environment without the user's settings, the folder of real MovieLens releases
(tests skip cleanly when it is absent) and an isolated MLflow store per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.isolation import REPO, isolated

# A pytest-xdist worker runs under execnet, whose __main__ has neither __spec__ nor __file__: pyspark
# (imported by great_expectations) then takes the process for a doctest run and calls sys.exit(0).
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

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


# The longest work units (minutes each: they run `make retrain` or `dvc repro` in copies of the
# repository) start first under xdist, so that no worker is left alone with one of them at the end.
LONGEST_FIRST = ("tests/ops/", "tests/test_pipeline_e2e.py", "tests/models/test_content_distributed.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the order work is handed out
        rank = {item: next((i for i, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p)), len(LONGEST_FIRST)) for item in items}
        items.sort(key=rank.__getitem__)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist `--dist loadfile` (make test), a test file runs on one worker, so its
    module-scoped fixtures are built once; tests/ops shares one session fixture (the retrain
    scenario), so that whole folder goes to one worker. Work is handed out in collection order."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndOpsFolder(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/ops" if nodeid.startswith("tests/ops/") else super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # keep LONGEST_FIRST's order instead of the largest test count first
    return FilesAndOpsFolder(config, log)
