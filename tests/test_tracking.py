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


def git_repository(folder: Path) -> str:
    """A git repository in `folder` with one commit; returns its id."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=folder, check=True, capture_output=True
        )
        return done.stdout.decode().strip()

    git("init", "-q")
    (folder / "f").write_text("x")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    return git("rev-parse", "HEAD")


def test_every_run_is_tagged_with_the_git_commit_and_the_dvc_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mlflow.tracking import MlflowClient

    commit = git_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "sunny-lake")
    dataset = {"source": "ml-100k", "fingerprint": "f"}
    with tracking.start_run("cofi-ranking@ml-100k", "exp-tags", "cofi", dataset, "ranking", model="cofi_ranking") as run_id:
        pass
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["mlflow.source.git.commit"] == commit and tags["dvc_experiment"] == "sunny-lake"
    assert (tags["model_family"], tags["objective"], tags["model"], tags["data_source"]) == ("cofi", "ranking", "cofi_ranking", "ml-100k")
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git stops looking before reaching the repository above
    assert tracking.git_commit(outside) is None


def test_the_digest_of_a_split_part_follows_its_ratings():
    import pandas as pd

    ratings = pd.DataFrame({"user_id": [1, 2], "movie_id": [3, 4], "rating": [4.0, 5.0]})
    digest = tracking.ratings_digest(ratings)
    assert len(digest) == tracking.DIGEST_LENGTH <= 36  # MLflow keeps at most 36 characters
    assert tracking.ratings_digest(ratings.copy()) == digest
    assert tracking.ratings_digest(ratings.assign(rating=[4.0, 4.5])) != digest
    assert tracking.run_name("content", "ranking", "files") == "content-ranking@files"
