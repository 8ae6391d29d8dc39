"""tracking.py: where runs and artifacts land."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking


def test_the_store_defaults_to_an_absolute_mlflow_db_at_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    inner = tmp_path / ".dvc" / "tmp" / "exps" / "run1"
    inner.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(inner)  # a `dvc exp run --temp` copy still logs to the real repository's store
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_artifacts_land_beside_the_sqlite_database_whatever_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    store = tmp_path / "store"
    store.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.chdir(elsewhere)
    with tracking.start_run("r", "exp-artifacts", "test", {"source": "synthetic", "fingerprint": "f"}):
        tracking.log_text("hello", "note.txt")
    experiment = mlflow.get_experiment_by_name("exp-artifacts")
    assert experiment.artifact_location == (store / "mlruns").resolve().as_uri()
    assert list((store / "mlruns").rglob("note.txt"))
    assert not (elsewhere / "mlruns").exists()
    assert tracking.local_artifact_location("http://127.0.0.1:5000") is None
