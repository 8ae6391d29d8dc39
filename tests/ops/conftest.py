"""One retraining scenario shared by the tracking-server, retrain and DVC-remote tests (it is the slow part).

A real `mlflow server` (sqlite backend, its own artifact folder) on 127.0.0.1; a copy of the repository
with tiny params and a local-folder DVC remote; `make retrain` run twice, each result committed as the
retrain pull request would be. The server stays up for the session; `Scenario.server` can stop and
restart it on the same store and port.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.models.loading import TRAINED_MODELS
from tests.isolation import GIT, copy_repository
from tests.servers import HOST, environment, free_port, mlflow_server, start, stop

# Tiny data and training: seconds per stage, still every stage doing real work.
TINY = {
    "data": {"synthetic": {"n_users": 60, "n_movies": 200, "n_ratings": 3000, "min_user_ratings": 20}},
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

    def env(self, **overrides: str) -> dict[str, str]:
        # a bounded MLflow client: 2 retries instead of 7 with backoff
        return environment(MLFLOW_TRACKING_URI=self.server.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", **overrides)

    def run(self, *command: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), cwd=self.repo, env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def read(self, name: str) -> Any:
        return json.loads((self.repo / name).read_text())

    def retrain(self) -> subprocess.CompletedProcess[str]:
        """`make retrain` (the venv is the test's own: -o skips building one in the copy), then commit
        dvc.lock and the metrics as merging the retrain pull request would."""
        started = time.monotonic()
        result = self.run("make", "-o", ".venv/.synced", "retrain")
        self.seconds.append(time.monotonic() - started)
        self.runs.append(result)
        if result.returncode != 0:
            raise AssertionError(f"make retrain failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        self.promotions.append(self.read("metrics/promotion.json"))
        self.trainings.append({name: self.read(f"metrics/train_{name}.json") for name in TRAINED_MODELS})
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"retrain {len(self.runs)}")
        return result


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


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
        git(repo, "commit", "-qam", "a local-folder DVC remote")
        found = Scenario(repo, remote, server)
        found.retrain()
        found.retrain()
        yield found
    finally:
        server.stop()
