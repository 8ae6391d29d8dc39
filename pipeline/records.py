"""A stage's result as two files: its numbers in metrics/<file> and everything else in records/<file>.

DVC reads metrics/ as metrics (`dvc metrics show/diff`, `dvc exp show`): there every value is a
number, and one that the params and data determine, so the same inputs give the same bytes. The
rest of the result goes to records/<file> with the same name and nesting: text (MLflow run ids,
model URIs, fingerprints, data sources, decisions, reasons), nulls, booleans, and the numbers named
in `recorded` (wall-clock seconds, registry version numbers). `join` puts the two back together.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pipeline.io import read_json, write_json


def is_number(value: Any) -> bool:
    """An int or float, not a bool (which JSON and DVC treat as true/false, not as 1/0)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def split(result: Mapping[str, Any], recorded: Collection[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, record) of a nested `result`: its numbers, except those under a key in `recorded`
    (at any depth), and everything else; a mapping left empty on one side is left out there."""
    metrics: dict[str, Any] = {}
    record: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            numbers, rest = split(value, recorded)
            if numbers:
                metrics[key] = numbers
            if rest or not numbers:  # an empty mapping stays in the record
                record[key] = rest
        elif is_number(value) and key not in recorded:
            metrics[key] = value
        else:
            record[key] = value
    return metrics, record


def join(metrics: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The result `split` took apart (key order aside)."""
    joined = dict(metrics)
    for key, value in record.items():
        numbers = joined.get(key)
        joined[key] = join(numbers, value) if isinstance(numbers, Mapping) and isinstance(value, Mapping) else value
    return joined


def write(metrics_file: Path, record_file: Path, result: Mapping[str, Any], recorded: Collection[str] = ()) -> None:
    """Both files of `result` (each written atomically; callers that need both or neither pass the
    temporary paths of io.atomic_outputs)."""
    metrics, record = split(result, recorded)
    write_json(metrics_file, metrics)
    write_json(record_file, record)


def read(metrics_file: Path, record_file: Path) -> dict[str, Any]:
    """The result written by `write`."""
    return join(read_json(metrics_file), read_json(record_file))
