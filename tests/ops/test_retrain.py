"""`make retrain` end to end against a local-folder DVC remote and a real tracking server: a team's
first batch of ratings, a second batch of newer ratings, and a third batch that validate rejects."""

from __future__ import annotations

import fcntl
import json
import re
import time

import mlflow
import pandas as pd
import pytest

from pipeline import registry, tracking
from pipeline.config import load_params
from pipeline.data.schema import conform_ratings
from pipeline.models.loading import TRAINED_MODELS

pytestmark = pytest.mark.slow

STAGES = (
    "ingest",
    "validate",
    "split",
    "features",
    "train_cofi",
    "train_content",
    "train_cofi_ranking",
    "train_content_ranking",
    "evaluate",
    "promote",
    "recommend",
)


def ran(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def test_the_first_retrain_runs_every_stage_pushes_and_makes_both_models_champion(scenario):
    first = scenario.runs[0].stdout
    assert ran(first) == set(STAGES)
    assert "dvc pull --allow-missing" in first and re.search(r"\d+ files? pushed", first)
    assert len([p for p in scenario.remote.rglob("*") if p.is_file()]) > 10, "nothing was pushed to the remote"
    for model in TRAINED_MODELS:
        entry = scenario.promotions[0][model]
        assert (entry["decision"], entry["version"], entry["champion_after"]) == ("first", 1, 1)


def test_the_second_retrain_ingests_the_appended_batch_and_trains_on_it(scenario):
    second = scenario.runs[1].stdout
    # data/own/ratings.csv grew: ingest and every later stage run again
    assert ran(second) == set(STAGES)
    assert "ingest: files: 3,000 ratings, 60 users, 200 movies" in second
    drift, accepted = scenario.read("metrics/drift.json"), scenario.read("data/accepted.json")["files"]
    assert (drift["previous"]["n_ratings"], drift["current"]["n_ratings"]) == (accepted["previous"]["n_ratings"], 3000)
    assert drift["n_ratings_change"] == 3000 - accepted["previous"]["n_ratings"] > 0
    assert drift["current"]["newest_timestamp"] > drift["previous"]["newest_timestamp"]
    assert 0 <= drift["rating_tv_distance"] < 0.1  # a random fifth of the same ratings: the stars barely move
    assert f"total-variation distance {drift['rating_tv_distance']:.4f}" in (scenario.repo / "reports/report.md").read_text()
    for model in TRAINED_MODELS:
        before, after = scenario.trainings[0][model], scenario.trainings[1][model]
        assert after["mlflow_run_id"] != before["mlflow_run_id"] and after["model_uri"] != before["model_uri"]
        assert after["dataset_fingerprint"] != before["dataset_fingerprint"]
        entry = scenario.promotions[1][model]
        assert entry["version"] == 2 and entry["champion_version"] == 1


def test_the_champion_is_judged_on_the_new_test_split_not_by_its_old_evaluation(scenario, monkeypatch):
    scenario.server.ensure()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scenario.server.uri)
    mlflow.set_tracking_uri(scenario.server.uri)
    params = load_params(scenario.repo / "params.yaml")
    train, test = (conform_ratings(pd.read_parquet(scenario.repo / f"data/split/{part}.parquet")) for part in ("train", "test"))
    for model in ("cofi", "cofi_ranking"):  # a rating and a ranking model
        entry, old = scenario.promotions[1][model], scenario.promotions[0][model]
        champion = tracking.load_model(f"models:/{entry['registered_model']}/1")
        on_new_split = registry.score(champion, entry["metric"], train, test, params.evaluate, params.ranking)
        assert entry["champion_score"] == pytest.approx(on_new_split, rel=1e-9)
        assert entry["champion_score"] != pytest.approx(old["challenger_score"], rel=1e-6)  # its score on the first split


def test_the_champion_moves_only_to_a_better_challenger(scenario):
    # the gate itself, with worse, equal and better challengers: tests/test_registry.py, tests/stages/test_promote.py
    for model in TRAINED_MODELS:
        entry = scenario.promotions[1][model]
        better = registry.improvement(entry["metric"], entry["challenger_score"], entry["champion_score"]) > 0
        assert (entry["decision"], entry["champion_after"]) == (("promoted", 2) if better else ("kept", 1)), model


def test_a_batch_that_validate_rejects_fails_the_retrain_and_changes_nothing(scenario):
    rejected = scenario.rejected
    assert rejected is not None and rejected.returncode != 0
    assert ran(rejected.stdout) == {"ingest", "validate"}
    assert "data validation failed" in rejected.stderr
    assert (
        "data/raw/id_map/users.parquet: column 'source_id': 3 rows are text, but the previous accepted data's user ids were "
        "integers: ingest hashes every user id now (the id rule), so no user keeps its id (e.g. 'u3', 'u1', 'u2')"
    ) in rejected.stderr, rejected.stderr
    assert "putting dvc.lock and the pipeline's outputs back as they were" in rejected.stderr
    assert "dvc push" not in rejected.stdout
    accepted, after = scenario.snapshots["accepted"], scenario.snapshots["rejected"]
    assert after["champions"] == accepted["champions"]
    changed = sorted(path for path in {*accepted["files"], *after["files"]} if accepted["files"].get(path) != after["files"].get(path))
    assert changed == []
    files = set(after["files"])  # what was compared: the lock, the reference, the data, the models, the metrics
    assert {"dvc.lock", "data/accepted.json", "data/raw/ratings.parquet", "metrics/drift.json", "records/promotion.json"} <= files
    assert all(any(path.startswith(f"models/{model}/") for path in files) for model in TRAINED_MODELS)
    report = json.loads((scenario.repo / "reports/validation-rejected/summary.json").read_text())
    assert report["success"] is False and report["suites"]["user_ids"]["failed"] == 1


def test_a_second_retrain_while_one_runs_is_refused_at_once(scenario):
    lock_before = (scenario.repo / "dvc.lock").read_text()
    with open(scenario.repo / ".retrain.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `make retrain` holds
        started = time.monotonic()
        result = scenario.run("make", "-o", ".venv/.synced", "retrain", timeout=60)
        seconds = time.monotonic() - started
    assert result.returncode != 0
    assert "another retrain holds .retrain.lock; not starting a second one" in result.stderr
    assert "dvc" not in result.stdout and seconds < 30
    assert (scenario.repo / "dvc.lock").read_text() == lock_before


def test_the_lock_is_released_when_a_retrain_ends(scenario):
    with open(scenario.repo / ".retrain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
