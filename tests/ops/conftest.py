"""One retraining scenario shared by the tracking-server, retrain and DVC-remote tests (it is the slow part).

A real `mlflow server` (sqlite backend, its own artifact folder) on 127.0.0.1; a copy of the repository
with tiny params, a local-folder DVC remote and a team's own files (data.source: files): `make retrain`
on a first batch of ratings in data/own/ratings.csv, then again after a second batch of newer ratings
is appended, each result committed as the retrain pull request would be; then a third batch that
validate rejects (its user ids turn into text) is appended and `make retrain` must fail, leaving the
workspace and the champions as the second retrain left them (`Scenario.rejected`, `Scenario.snapshots`);
the file is then put back. The server stays up for the session; `Scenario.server` can stop and
restart it on the same store and port.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline import records, registry
from pipeline.config import SyntheticParams
from pipeline.data.synthetic import generate
from pipeline.models.loading import TRAINED_MODELS
from tests.isolation import GIT, copy_repository
from tests.servers import HOST, environment, free_port, mlflow_server, start, stop

# The team's own ratings: a tiny synthetic dataset, 80% of it the first batch and 20% (new timestamps
# within 30 days after the first batch's newest rating) the second; own files keep their ids as integers.
OWN_DATA = SyntheticParams(n_users=60, n_movies=200, n_ratings=3000, min_user_ratings=20, seed=42)
RATINGS_FILE, MOVIES_FILE = "data/own/ratings.csv", "data/own/movies.csv"
DAY = 86_400
# What a rejected retrain must leave as it was (data/own/ is the team's input, changed by the test itself).
KEPT = ("data", "models", "metrics", "records", "plots", "reports/validation", "dvc.lock")

# Tiny data and training: seconds per stage, still every stage doing real work.
TINY = {
    "data": {"source": "files"},
    "cofi": {"num_features": 5, "iterations": 20},
    "content": {"user_layers": [8], "item_layers": [8], "embedding_dim": 4, "epochs": 2, "validation_fraction": 0.0, "patience": None},
    "content_ranking": {"user_layers": [8], "item_layers": [8], "embedding_dim": 4, "id_dim": 4, "epochs": 2},
}
COFI_ITERATIONS, CONTENT_EPOCHS = 20, 2


@dataclass
class TrackingServer:
    store: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.process = start(mlflow_server(self.store, self.port), f"{self.uri}/health", self.store / "server.log")

    def ensure(self) -> None:
        """Start it again if a test killed it."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def store_client(self) -> Any:
        """A client on the server's own sqlite store: reads the registry also while the server is down."""
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{self.store / 'mlflow.db'}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def kill(self) -> None:
        """The server dies (SIGKILL: no clean shutdown)."""
        if self.process is not None:
            stop(self.process, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@dataclass
class Scenario:
    repo: Path
    remote: Path
    server: TrackingServer
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    trainings: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    rejected: subprocess.CompletedProcess[str] | None = None  # the third, rejected `make retrain`
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # "accepted" / "rejected": snapshot()

    def env(self, **overrides: str) -> dict[str, str]:
        # a bounded MLflow client: 2 retries instead of 7 with backoff
        return environment(MLFLOW_TRACKING_URI=self.server.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", **overrides)

    def run(self, *command: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), cwd=self.repo, env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def read(self, name: str) -> Any:
        return json.loads((self.repo / name).read_text())

    def result(self, metrics_file: str) -> dict[str, Any]:
        """metrics/<file> and records/<file>, joined: what the stage that wrote them returned."""
        path = self.repo / metrics_file
        return records.read(path, self.repo / "records" / path.name)

    def retrain(self) -> subprocess.CompletedProcess[str]:
        """`make retrain` (the venv is the test's own: -o skips building one in the copy), then commit
        dvc.lock and the metrics as merging the retrain pull request would."""
        started = time.monotonic()
        result = self.run("make", "-o", ".venv/.synced", "retrain")
        self.seconds.append(time.monotonic() - started)
        self.runs.append(result)
        if result.returncode != 0:
            raise AssertionError(f"make retrain failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        self.promotions.append(self.result("metrics/promotion.json"))
        self.trainings.append({name: self.result(f"metrics/train_{name}.json") for name in TRAINED_MODELS})
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"retrain {len(self.runs)}")
        return result

    def champions(self) -> dict[str, str]:
        """The champion version of each trained model, read from the server's own store."""
        source = self.read("data/raw/dataset.json")["source"]
        store = self.server.store_client()
        names = {name: registry.registered_name(name, source) for name in TRAINED_MODELS}
        return {name: store.get_model_version_by_alias(registered, "champion").version for name, registered in names.items()}

    def snapshot(self) -> dict[str, Any]:
        """sha256 of every file under KEPT (data/own/ left out) and the champions."""
        files = [path for name in KEPT for path in sorted((self.repo / name).rglob("*")) or [self.repo / name]]
        hashes = {
            str(path.relative_to(self.repo)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files
            if path.is_file() and not path.is_relative_to(self.repo / "data/own")
        }
        return {"files": hashes, "champions": self.champions()}


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def own_batches() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(first batch, second batch, movies) of the team's ratings; the second batch's ratings are newer."""
    ratings, movies = generate(OWN_DATA)
    rng = np.random.default_rng(7)
    later = rng.random(len(ratings)) < 0.2
    first = ratings[~later]
    newest = int(first["timestamp"].max())
    second = ratings[later].assign(timestamp=newest + 1 + rng.integers(0, 30 * DAY, int(later.sum())))
    return first, second, movies


def text_id_batch(movies: pd.DataFrame, after: int) -> pd.DataFrame:
    """A third batch whose new users have text ids (u1, u2, u3): ingest then hashes every user id."""
    users = np.repeat(["u1", "u2", "u3"], 4)
    return pd.DataFrame(
        {"user_id": users, "movie_id": np.tile(movies["movie_id"].to_numpy()[:4], 3), "rating": 4.0, "timestamp": after + DAY}
    )


def append_ratings(repo: Path, batch: pd.DataFrame) -> None:
    batch.to_csv(repo / RATINGS_FILE, mode="a", header=False, index=False)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("retrain")
    (root / "mlflow").mkdir()
    server = TrackingServer(root / "mlflow", free_port())
    server.start()
    try:
        (root / "repo").mkdir()
        repo = copy_repository(root / "repo", TINY)
        remote = root / "remote"
        subprocess.run(["dvc", "remote", "add", "-d", "storage", str(remote)], cwd=repo, env=environment(), check=True)
        first, second, movies = own_batches()
        first.to_csv(repo / RATINGS_FILE, index=False)
        movies.to_csv(repo / MOVIES_FILE, index=False)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "a local-folder DVC remote; the team's first batch of ratings")
        found = Scenario(repo, remote, server)
        found.retrain()
        append_ratings(repo, second)
        found.retrain()
        found.snapshots["accepted"] = found.snapshot()
        append_ratings(repo, text_id_batch(movies, int(second["timestamp"].max())))
        found.rejected = found.run("make", "-o", ".venv/.synced", "retrain")
        found.snapshots["rejected"] = found.snapshot()
        git(repo, "checkout", "--", RATINGS_FILE)  # the team takes the bad batch out again
        yield found
    finally:
        server.stop()
