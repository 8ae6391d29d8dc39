"""What keeps the tests away from the user's workspace: committed files, repository copies, a clean environment.

A user's checkout holds what they ran: `dvc exp run -S ...` rewrites params.yaml, `dvc repro` writes
data/, models/, metrics/, dvc.lock and mlflow.db, and their shell may export MLFLOW_TRACKING_URI or
RECSYS_DATA_MIRROR. Tests read none of it: they read files as committed at HEAD, run DVC in copies of
the committed tree, and run with the environment `isolated` builds (applied for the whole session by
tests/conftest.py, before any other fixture).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]

# Read by the pipeline, MLflow or DVC (MLFLOW_TRACKING_URI, RECSYS_DATA_MIRROR, DVC_EXP_NAME, ...).
USER_PREFIXES = ("MLFLOW_", "DVC_", "RECSYS_")
# Where to find the test data, not a pipeline input: kept.
KEPT = frozenset({"RECSYS_SHARED_DATASETS"})
# TF_CONFIG makes training wait for other workers; the GIT_* ones (set inside git hooks) would point
# the git commands run in a copy at the user's repository and index.
USER_NAMES = frozenset(
    {
        "TF_CONFIG",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
    }
)


def is_user_variable(name: str) -> bool:
    return name not in KEPT and (name in USER_NAMES or name.startswith(USER_PREFIXES))


def isolated(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """`environ` without the user's settings: MLflow tracks into `home`/mlflow.db, DVC reads no user or
    system config (an empty `home`/dvc-config) and sends no analytics."""
    kept = {name: value for name, value in environ.items() if not is_user_variable(name)}
    config = home / "dvc-config"
    config.mkdir(parents=True, exist_ok=True)
    return {
        **kept,
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "DVC_GLOBAL_CONFIG_DIR": str(config),
        "DVC_SYSTEM_CONFIG_DIR": str(config),
        "DVC_NO_ANALYTICS": "1",
    }


def environment(**overrides: str) -> dict[str, str]:
    """The explicit environment of a subprocess: the (isolated) os.environ, the venv's bin first on
    PATH (stages run `recsys`, mlflow starts uvicorn by name), plus `overrides`."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **overrides}


def committed(path: str) -> str:
    """The text of `path` as committed at HEAD, whatever the working copy holds now."""
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO, check=True, capture_output=True, text=True).stdout


def committed_yaml(path: str) -> Any:
    return yaml.safe_load(committed(path))


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied key by key, nested mappings merged."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def copy_repository(target: Path, overrides: dict | None = None) -> Path:
    """A fresh git repository in `target` holding the tree of HEAD as committed (`git archive HEAD`),
    with `overrides` merged into its params.yaml and committed.

    The committed tree, not the working tree: the working tree holds the user's params.yaml edits,
    dvc.lock, pipeline outputs, untracked files and modified tracked files, and a test must not depend
    on any of them. So edits that are not committed yet (also to dvc.yaml, params.yaml or the Makefile)
    do not reach the copy: commit them before running the tests that use it. The Python code the copy's
    stages run is the installed package, i.e. this checkout's pipeline/ as it is on disk. CI tests a
    clean checkout, where both are the same.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    if overrides:
        params_file = target / "params.yaml"
        params_file.write_text(yaml.safe_dump(merge(yaml.safe_load(params_file.read_text()), overrides), sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"], [*GIT, "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=target, check=True, capture_output=True, env=environment())
    return target


def run_tool(repo: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a console script of this environment (dvc, recsys) in `repo`, as a user would."""
    env = environment()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # set by this process's own TensorFlow imports
    result = subprocess.run(
        [str(BIN / name), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
