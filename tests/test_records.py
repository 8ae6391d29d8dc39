"""A stage's result as a metrics file (numbers only) and a record (the rest), and back."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import records

RESULT = {
    "final_cost": 0.25,
    "iterations_run": 30,
    "seconds": 15.1,
    "mlflow_run_id": "a38afa47",
    "converged": True,
    "val_loss": None,
    "cold": {"rmse": None, "n_test_ratings": 34},
    "ease": {"skipped": "too many movies"},
    "current": {"n_ratings": 9, "id_types": {"user_id": "integer"}, "rating_histogram": {"4": 5, "5": 4}},
    "previous": {},
}


def leaves(tree: dict) -> list:
    return [leaf for value in tree.values() for leaf in (leaves(value) if isinstance(value, dict) else [value])]


def test_the_metrics_hold_the_numbers_and_the_record_everything_else():
    metrics, record = records.split(RESULT, recorded=("seconds",))
    assert metrics == {
        "final_cost": 0.25,
        "iterations_run": 30,
        "cold": {"n_test_ratings": 34},
        "current": {"n_ratings": 9, "rating_histogram": {"4": 5, "5": 4}},
    }
    assert record == {
        "seconds": 15.1,
        "mlflow_run_id": "a38afa47",
        "converged": True,
        "val_loss": None,
        "cold": {"rmse": None},
        "ease": {"skipped": "too many movies"},
        "current": {"id_types": {"user_id": "integer"}},
        "previous": {},
    }
    assert all(records.is_number(leaf) for leaf in leaves(metrics))


def test_join_gives_back_the_result():
    assert records.join(*records.split(RESULT, recorded=("seconds",))) == RESULT
    assert records.join(*records.split({})) == {}


def test_write_and_read_round_trip_through_two_files(tmp_path: Path):
    metrics_file, record_file = tmp_path / "metrics/x.json", tmp_path / "records/x.json"
    records.write(metrics_file, record_file, RESULT, recorded=("seconds",))
    assert "seconds" not in json.loads(metrics_file.read_text()) and json.loads(record_file.read_text())["seconds"] == 15.1
    assert records.read(metrics_file, record_file) == RESULT


def test_booleans_are_not_numbers():
    assert [records.is_number(value) for value in (1, 0.5, float("nan"), True, None, "1")] == [True, True, True, False, False, False]
