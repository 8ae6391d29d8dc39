"""Atomic outputs: all or nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.io import atomic_outputs, read_json, require, write_json, write_parquet


def test_outputs_appear_together_on_success(tmp_path: Path):
    with atomic_outputs(tmp_path / "a.txt", tmp_path / "dir") as (a, d):
        a.write_text("A")
        d.mkdir()
        (d / "inner.txt").write_text("I")
        assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "A"
    assert (tmp_path / "dir" / "inner.txt").read_text() == "I"


def test_a_failure_leaves_previous_outputs_untouched_and_no_temporaries(tmp_path: Path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_outputs(tmp_path / "a.txt", tmp_path / "b.txt") as (a, _b):
        a.write_text("new")
        raise RuntimeError("boom")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_directory_output_replaces_the_old_directory(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stale.txt").write_text("x")
    with atomic_outputs(tmp_path / "d") as (d,):
        d.mkdir()
        (d / "fresh.txt").write_text("y")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["fresh.txt"]


def test_a_promised_output_that_was_not_written_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="b.txt"), atomic_outputs(tmp_path / "a", tmp_path / "b.txt") as (a, _):
        a.write_text("A")
    assert not (tmp_path / "a").exists()


def test_json_and_parquet_round_trip(tmp_path: Path):
    write_json(tmp_path / "x" / "m.json", {"a": 1})
    assert read_json(tmp_path / "x" / "m.json") == {"a": 1}
    frame = pd.DataFrame({"a": [1, 2]})
    write_parquet(tmp_path / "f.parquet", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), frame)


def test_require_names_the_missing_file_and_the_stage_that_writes_it(tmp_path: Path):
    present = tmp_path / "train.parquet"
    present.write_bytes(b"")
    require(present, "split")
    with pytest.raises(DataError, match=r"^.*test\.parquet: not found; run the split stage first$"):
        require(tmp_path / "test.parquet", "split")
