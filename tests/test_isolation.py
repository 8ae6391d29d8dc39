"""tests/isolation.py: the environment every test runs in, committed files and repository copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.isolation import REPO, committed, copy_repository, environment, isolated

SEEN = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RECSYS_DATA_MIRROR", "DVC_EXP_NAME", "TF_CONFIG")
PRINT_SEEN = f"import json, os; print(json.dumps({{name: os.environ.get(name) for name in {SEEN!r}}}))"


def test_isolated_drops_the_users_settings_and_keeps_the_rest(tmp_path: Path):
    user = {
        "PATH": "/usr/bin", "HOME": "/home/u", "RECSYS_SHARED_DATASETS": "/data",
        "MLFLOW_TRACKING_URI": "sqlite:////home/u/mlflow.db", "MLFLOW_REGISTRY_URI": "http://r",
        "MLFLOW_EXPERIMENT_NAME": "mine", "RECSYS_DATA_MIRROR": "/home/u/mirror", "DVC_EXP_NAME": "exp-1",
        "TF_CONFIG": "{}", "GIT_DIR": "/home/u/repo/.git", "GIT_INDEX_FILE": "/home/u/repo/.git/index",
    }
    env = isolated(user, tmp_path)
    assert env == {
        "PATH": "/usr/bin", "HOME": "/home/u", "RECSYS_SHARED_DATASETS": "/data",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-config"), "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-config"),
        "DVC_NO_ANALYTICS": "1",
    }
    assert (tmp_path / "dvc-config").is_dir() and not any((tmp_path / "dvc-config").iterdir())


def seen() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in SEEN}


@pytest.fixture(scope="module")
def seen_by_a_module_fixture() -> dict[str, dict[str, str | None]]:
    """What a module-scoped fixture (like the end-to-end `dvc repro`) and the subprocess it starts see:
    module fixtures run before any function-scoped one, so only the session isolation protects them."""
    child = subprocess.run([sys.executable, "-c", PRINT_SEEN], env=environment(), check=True, capture_output=True, text=True)
    return {"fixture": seen(), "subprocess": json.loads(child.stdout)}


def test_module_fixtures_and_their_subprocesses_see_no_user_setting(seen_by_a_module_fixture, tmp_path_factory):
    session_temp = str(tmp_path_factory.getbasetemp())
    for who, seen in seen_by_a_module_fixture.items():
        assert seen["MLFLOW_TRACKING_URI"].startswith(f"sqlite:///{session_temp}"), (who, seen)
        assert {name: value for name, value in seen.items() if name != "MLFLOW_TRACKING_URI"} == dict.fromkeys(SEEN[1:]), who


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
    assert yaml.safe_load((copy / "params.yaml").read_text()) == {
        **committed_params, "split": {**committed_params["split"], "seed": 7}
    }
    assert (copy / "dvc.yaml").read_text() == committed("dvc.yaml")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout == ""
