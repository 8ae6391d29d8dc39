"""tests/isolation.py: the environment every test runs in, committed files and repository copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import tracking
from tests.isolation import REPO, committed, copy_repository, environment, isolated

SEEN = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RECSYS_DATA_MIRROR", "DVC_EXP_NAME", "TF_CONFIG")
PRINT_SEEN = f"import json, os; print(json.dumps({{name: os.environ.get(name) for name in {SEEN!r}}}))"


def test_isolated_drops_the_users_settings_and_keeps_the_rest(tmp_path: Path):
    user = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "RECSYS_SHARED_DATASETS": "/data",
        "MLFLOW_TRACKING_URI": "sqlite:////home/u/mlflow.db",
        "MLFLOW_REGISTRY_URI": "http://r",
        "MLFLOW_EXPERIMENT_NAME": "mine",
        "RECSYS_DATA_MIRROR": "/home/u/mirror",
        "DVC_EXP_NAME": "exp-1",
        "TF_CONFIG": "{}",
        "GIT_DIR": "/home/u/repo/.git",
        "GIT_INDEX_FILE": "/home/u/repo/.git/index",
    }
    env = isolated(user, tmp_path)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "RECSYS_SHARED_DATASETS": "/data",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-config"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-config"),
        "DVC_NO_ANALYTICS": "1",
    }
    assert (tmp_path / "dvc-config").is_dir() and not any((tmp_path / "dvc-config").iterdir())


@pytest.fixture(scope="module")
def module_fixture_run() -> dict:
    """A module-scoped fixture that tracks a run and starts a subprocess, as the end-to-end `dvc repro` does.
    Module fixtures run before any function-scoped one: only the session isolation keeps them off the
    user's store."""
    with tracking.start_run("probe", "isolation-probe", "test", {"source": "synthetic", "fingerprint": "f"}) as run_id:
        pass
    child = subprocess.run([sys.executable, "-c", PRINT_SEEN], env=environment(), check=True, capture_output=True, text=True)
    return {"run_id": run_id, "uri": os.environ["MLFLOW_TRACKING_URI"], "subprocess": json.loads(child.stdout)}


def test_module_fixtures_track_into_the_session_store_and_subprocesses_see_no_user_setting(module_fixture_run, tmp_path_factory):
    from mlflow.tracking import MlflowClient

    assert module_fixture_run["uri"].startswith(f"sqlite:///{tmp_path_factory.getbasetemp()}")
    run = MlflowClient(tracking_uri=module_fixture_run["uri"]).get_run(module_fixture_run["run_id"])
    assert "dvc_experiment" not in run.data.tags  # DVC_EXP_NAME is not seen either
    seen = module_fixture_run["subprocess"]
    assert seen.pop("MLFLOW_TRACKING_URI") == module_fixture_run["uri"]
    assert seen == dict.fromkeys(SEEN[1:])


def test_committed_reads_head_not_the_working_copy():
    head = subprocess.run(["git", "show", "HEAD:dvc.yaml"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert committed("dvc.yaml") == head and "stages:" in head


def files_at_head(repo: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    return listed.stdout.splitlines()


def test_a_copy_holds_exactly_the_committed_tree_with_the_overrides(tmp_path: Path):
    copy = copy_repository(tmp_path, {"split": {"seed": 7}})
    assert files_at_head(copy) == files_at_head(REPO)
    committed_params = yaml.safe_load(committed("params.yaml"))
    assert yaml.safe_load((copy / "params.yaml").read_text()) == {**committed_params, "split": {**committed_params["split"], "seed": 7}}
    assert (copy / "dvc.yaml").read_text() == committed("dvc.yaml")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout == ""
