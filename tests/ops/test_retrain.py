"""`make retrain` end to end, twice, against a local-folder DVC remote and a real tracking server."""

from __future__ import annotations

import fcntl
import re
import time

import pytest

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


def test_the_second_retrain_trains_again_and_compares_with_the_first(scenario):
    second = scenario.runs[1].stdout
    # data stages are up to date; the training stages are forced, so evaluate, promote and recommend (it
    # reads the training records, whose run ids are new) follow
    retrained = {"train_cofi", "train_content", "train_cofi_ranking", "train_content_ranking"}
    assert ran(second) == retrained | {"evaluate", "promote", "recommend"}
    for model in TRAINED_MODELS:
        before, after = scenario.trainings[0][model], scenario.trainings[1][model]
        assert after["mlflow_run_id"] != before["mlflow_run_id"] and after["model_uri"] != before["model_uri"]
        first, entry = scenario.promotions[0][model], scenario.promotions[1][model]
        assert entry["version"] == 2 and entry["champion_version"] == 1
        # the first model, scored again on the same test split, gets the same number as its own evaluation
        assert entry["champion_score"] == pytest.approx(first["challenger_score"], rel=1e-9)
        assert entry["decision"] in ("promoted", "kept")
        assert entry["champion_after"] == (2 if entry["decision"] == "promoted" else 1)


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
