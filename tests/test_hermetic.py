"""The tests pass in a used workspace and leave it as it was.

A copy of the repository is made to look like a user's checkout after
`dvc exp run -S data.source=ml-latest-small -S data.mirror=<relative folder>` (DVC writes both values
into params.yaml), with pipeline outputs and an mlflow.db lying around, and with MLFLOW_TRACKING_URI
(their own store, holding a run and a registered model), RECSYS_DATA_MIRROR and DVC_EXP_NAME exported.
pytest runs inside it on the fast tests that read params, paths or the environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.isolation import copy_repository, environment, merge

pytestmark = pytest.mark.slow  # a pytest session of its own: ~40 s of CPU, mostly imports

SENSITIVE_TESTS = [
    "tests/test_config.py",
    "tests/test_isolation.py",
    "tests/stages/test_ingest.py",
    "tests/stages/test_split_features.py",
]
USER_PARAMS = {"data": {"source": "ml-latest-small", "mirror": "../datasets"}}
USER_OUTPUTS = [
    "data/raw/ratings.parquet",
    "data/split/train.parquet",
    "data/features/users.parquet",
    "models/cofi/model.json",
    "metrics/evaluation.json",
    "plots/cofi_cost.csv",
    "mlflow.db",
]


def user_store(folder: Path) -> str:
    """A sqlite MLflow store with one finished run and one registered model, as a user's would hold."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("mine", artifact_location=(folder / "mlruns").as_uri())
    client.set_terminated(client.create_run(experiment).info.run_id)
    client.create_registered_model("recsys-cofi")
    return uri


def store_contents(uri: str) -> tuple[list[str], list[str]]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    return sorted(r.info.run_id for r in runs), sorted(m.name for m in client.search_registered_models())


def files(*roots: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file under `roots` (outside .git and bytecode caches): contents and modification time."""
    return {
        path: (path.read_bytes(), path.stat().st_mtime_ns)
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts
    }


def changed(before: dict, after: dict) -> list[str]:
    return sorted(str(path) for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def used_workspace(root: Path) -> Path:
    repo = copy_repository(root / "repo")
    params = repo / "params.yaml"
    params.write_text(yaml.safe_dump(merge(yaml.safe_load(params.read_text()), USER_PARAMS), sort_keys=False))
    for name in USER_OUTPUTS:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(b"the user's own file, not for tests\n")
    return repo


def test_the_sensitive_tests_pass_in_a_used_workspace_and_touch_nothing_of_the_user(tmp_path: Path):
    repo = used_workspace(tmp_path)
    (tmp_path / "user").mkdir()
    uri = user_store(tmp_path / "user")
    runs_before = store_contents(uri)
    before = files(repo, tmp_path / "user")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--basetemp",
            str(tmp_path / "pytest"),
            *SENSITIVE_TESTS,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment(MLFLOW_TRACKING_URI=uri, RECSYS_DATA_MIRROR=str(tmp_path / "no-such-mirror"), DVC_EXP_NAME="mine"),
    )

    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert changed(before, files(repo, tmp_path / "user")) == [], report
    assert store_contents(uri) == runs_before, report
    assert result.returncode == 0, report
