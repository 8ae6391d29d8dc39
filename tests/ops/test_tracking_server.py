"""Tracking-server mode: the whole pipeline logs to a real `mlflow server`; an unreachable server fails
fast, before any training; a server that dies before promote leaves the champions untouched."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import registry, tracking
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import RecsysError
from pipeline.models.loading import TRAINED_MODELS, load_trained
from tests.ops.conftest import COFI_ITERATIONS, CONTENT_EPOCHS, git
from tests.servers import HOST, environment, free_port

slow = pytest.mark.slow


# ---- check_reachable (fast, loopback only) ---------------------------------------------------
def test_a_closed_port_fails_at_once_naming_the_uri_without_credentials():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(RecsysError, match=rf"MLflow tracking server http://{HOST}:{port} does not answer") as caught:
        tracking.check_reachable(f"http://user:secret@{HOST}:{port}", timeout=2)
    assert time.monotonic() - started < 2
    assert "secret" not in str(caught.value) and "MLFLOW_TRACKING_URI" in str(caught.value)


def test_a_server_that_never_answers_fails_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never replies
        silent.bind((HOST, 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(RecsysError, match="does not answer"):
            tracking.check_reachable(f"http://{HOST}:{silent.getsockname()[1]}", timeout=0.5)
        assert time.monotonic() - started < 3


def test_any_http_answer_counts_as_reachable_and_local_stores_are_not_checked():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer((HOST, 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tracking.check_reachable(f"http://{HOST}:{server.server_address[1]}", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
    tracking.check_reachable("sqlite:////nonexistent/mlflow.db")
    assert tracking.shown_uri("https://u:p@example.org:8443/mlflow") == "https://example.org:8443/mlflow"


# ---- the pipeline against a real server (the shared retrain scenario) --------------------------
@pytest.fixture
def client(scenario, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    scenario.server.ensure()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scenario.server.uri)
    mlflow.set_tracking_uri(scenario.server.uri)
    return MlflowClient(scenario.server.uri)


@slow
def test_every_run_with_its_params_tags_and_full_curves_is_on_the_server(scenario, client):
    experiment = client.get_experiment_by_name("recsys")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    names = sorted(run.info.run_name for run in runs)
    source = scenario.read("data/raw/dataset.json")["source"]
    models = ["cofi-rating", "content-rating", "cofi-ranking", "content-ranking", "bias-rating", "global_mean-rating"]
    models += ["popularity-ranking", "ease-ranking", "genre_affinity-ranking"]
    assert names == sorted([f"{model}@{source}" for model in models] * 2)
    fingerprint = scenario.read("data/raw/dataset.json")["fingerprint"]  # of the second batch
    evaluation = scenario.read("metrics/evaluation.json")
    assert scenario.trainings[1]["cofi"]["dataset_fingerprint"] == fingerprint
    for round_, trained in enumerate(scenario.trainings):
        cofi = client.get_run(trained["cofi"]["mlflow_run_id"])
        assert cofi.info.status == "FINISHED" and cofi.data.tags["dataset_fingerprint"] == trained["cofi"]["dataset_fingerprint"]
        assert (cofi.data.params["cofi.iterations"], cofi.data.params["cofi.num_features"]) == ("20", "5")
        cost = client.get_metric_history(cofi.info.run_id, "curve_train_cost")
        assert [m.step for m in sorted(cost, key=lambda m: m.step)] == list(range(COFI_ITERATIONS))
        content = client.get_run(trained["content"]["mlflow_run_id"])
        assert (content.data.params["content.epochs"], content.data.params["content.user_layers"]) == ("2", "[8]")
        loss = client.get_metric_history(content.info.run_id, "curve_train_loss")
        assert sorted(m.step for m in loss) == list(range(1, CONTENT_EPOCHS + 1))
        if round_ == 1:  # the workspace's curves and evaluation belong to the second retrain
            curve = pd.read_csv(scenario.repo / "plots/cofi_cost.csv")
            np.testing.assert_allclose([m.value for m in sorted(cost, key=lambda m: m.step)], curve["cost"], rtol=1e-6)
            curve = pd.read_csv(scenario.repo / "plots/content_loss.csv")
            np.testing.assert_allclose([m.value for m in sorted(loss, key=lambda m: m.step)], curve["loss"], rtol=1e-6)
            assert cofi.data.metrics["test_rmse"] == pytest.approx(evaluation["cofi"]["rmse"])
            assert content.data.metrics["test_ndcg_at_k"] == pytest.approx(evaluation["content"]["ndcg_at_k"])


@slow
def test_the_logged_and_registered_models_load_and_predict_like_the_trained_files(scenario, client):
    test = pd.read_parquet(scenario.repo / "data/split/test.parquet")[[USER, MOVIE]].head(50)
    source = scenario.read("data/raw/dataset.json")["source"]
    for name in TRAINED_MODELS:
        trained = load_trained(name, scenario.repo / "models")
        logged = mlflow.pyfunc.load_model(scenario.trainings[1][name]["model_uri"])
        np.testing.assert_allclose(logged.predict(test), trained.predict(test), rtol=1e-6)
        champion = mlflow.pyfunc.load_model(registry.model_alias_uri(name, source))
        assert len(champion.predict(test)) == len(test)


@slow
def test_the_registry_holds_both_versions_with_aliases_and_tags(scenario, client):
    dataset = scenario.read("data/raw/dataset.json")
    fingerprint = dataset["fingerprint"]
    for name in TRAINED_MODELS:
        registered = registry.registered_name(name, dataset["source"])
        entry = scenario.promotions[1][name]
        assert entry["registered_model"] == registered
        assert int(client.get_model_version_by_alias(registered, "challenger").version) == 2
        assert int(client.get_model_version_by_alias(registered, "champion").version) == entry["champion_after"]
        second = client.get_model_version(registered, "2")
        assert second.run_id == scenario.trainings[1][name]["mlflow_run_id"]
        assert second.tags["dataset_fingerprint"] == fingerprint
        assert second.tags["promotion_decision"] == entry["decision"] and second.tags["compared_with_version"] == "1"


@slow
def test_an_unreachable_server_fails_the_pipeline_in_seconds_before_training(scenario, tmp_path: Path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(scenario.repo), str(clone))
    env = environment()
    subprocess.run(["dvc", "pull", "ingest", "split"], cwd=clone, env=env, check=True, capture_output=True, timeout=120)
    uri = f"http://{HOST}:{free_port()}"
    started = time.monotonic()
    result = subprocess.run(
        ["dvc", "repro", "--force", "--single-item", "train_cofi"],
        cwd=clone,
        env={**env, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"error: MLflow tracking server {uri} does not answer" in output
    assert "iterations in" not in output and not (clone / "models/cofi").exists()
    assert seconds < 30, f"took {seconds:.0f} s to fail"


@slow
def test_a_server_dying_before_promote_fails_it_clearly_and_leaves_the_champions_untouched(scenario):
    source = scenario.read("data/raw/dataset.json")["source"]

    def champions() -> dict[str, str]:
        store = scenario.server.store_client()  # the server's own store: readable while it is down
        return {
            name: store.get_model_version_by_alias(registry.registered_name(name, source), "champion").version for name in TRAINED_MODELS
        }

    scenario.server.ensure()
    before = champions()
    evaluation_file, promotion_files = scenario.repo / "metrics/evaluation.json", scenario.repo.glob("*/promotion.json")
    evaluation, promotion = evaluation_file.read_text(), {path: path.read_text() for path in promotion_files}
    # the gate would move champion to version 2 if it could reach the registry
    winning = evaluation.replace(f'"rmse": {scenario.read("metrics/evaluation.json")["cofi"]["rmse"]}', '"rmse": 0.0', 1)
    assert winning != evaluation
    scenario.server.kill()
    try:
        evaluation_file.write_text(winning)
        started = time.monotonic()
        result = scenario.run("recsys", "promote", timeout=120)
        seconds = time.monotonic() - started
    finally:
        evaluation_file.write_text(evaluation)
    assert result.returncode == 1 and seconds < 30
    assert (
        result.stderr.strip().splitlines()[-1].startswith(f"error: promote: MLflow tracking server {scenario.server.uri} does not answer")
    )
    assert "nothing registered, no alias moved" in result.stderr
    assert len(promotion) == 2 and {path: path.read_text() for path in promotion} == promotion  # metrics/ and records/
    assert champions() == before
    cofi = registry.registered_name("cofi", source)
    assert len(scenario.server.store_client().search_model_versions(f"name = '{cofi}'")) == 2
