"""The champion served by MLflow's own server answers /invocations with the model's ratings."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import registry, tracking
from pipeline.data.schema import MOVIE, USER
from tests.factories import low_rank_ratings, tiny_cofi
from tests.servers import BIN, HOST, free_port, serving

pytestmark = pytest.mark.slow


def invoke(url: str, rows: pd.DataFrame) -> list[float]:
    """POST the README's request: JSON {"dataframe_split": {"columns": [...], "data": [[...], ...]}}."""
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_the_cofi_champion_serves_the_ratings_its_predict_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the sqlite store keeps artifacts in ./mlruns
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    model = tiny_cofi(ratings, movies)
    with tracking.start_run("cofi", "serving-test", "cofi", {"fingerprint": "f", "source": "synthetic"}) as run_id:
        uri = tracking.log_model(model, "cofi", example=ratings[[USER, MOVIE]].head(3))
    name = registry.registered_name("cofi", "synthetic")
    version = registry.register(MlflowClient(), name, uri, run_id, {})
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version.version)

    port = free_port()
    command = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        registry.model_alias_uri("cofi", "synthetic"),
        "--env-manager",
        "local",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    # known pairs, an unknown user and an unknown movie (fallbacks, never an error)
    rows = pd.concat([ratings[[USER, MOVIE]].head(4), pd.DataFrame({USER: [999, 1], MOVIE: [1, 99999]})], ignore_index=True)
    with serving(command, f"http://{HOST}:{port}/ping", tmp_path / "serve.log", timeout=120):
        answer = invoke(f"http://{HOST}:{port}/invocations", rows)
    np.testing.assert_allclose(answer, model.predict(rows), rtol=0, atol=1e-12)
    assert len(answer) == 6 and all(0.5 <= value <= 5.0 for value in answer)
