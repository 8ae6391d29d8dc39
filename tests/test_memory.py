"""The memory guard: a data set too large for data.max_memory_gb stops a stage at once, with the estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import STAGES, app
from pipeline.config import parse_params
from pipeline.errors import RecsysError
from pipeline.memory import BASE_MIB, MIB_PER_MILLION, check_memory, dataset_ratings, estimate_peak_mib

runner = CliRunner()


def test_every_data_and_training_stage_has_a_factor():
    guarded = {module.rsplit(".", 1)[-1] for module, _ in STAGES.values()} - {"promote"}  # the names the guard is called with
    assert set(BASE_MIB) == set(MIB_PER_MILLION) == guarded


def test_estimate_is_base_plus_per_million_ratings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(BASE_MIB, "split", 300)
    monkeypatch.setitem(MIB_PER_MILLION, "split", 150)
    assert estimate_peak_mib("split", 10_000_000) == 300 + 150 * 10
    assert estimate_peak_mib("split", 0) == 300


def test_over_the_limit_names_stage_size_estimate_and_param(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(BASE_MIB, "split", 1000)
    monkeypatch.setitem(MIB_PER_MILLION, "split", 100)
    # 1000 + 100 * 20 = 3000 MiB = 3.15 GB
    with pytest.raises(RecsysError) as caught:
        check_memory("split", 20_000_000, 3.0, "data/raw/dataset.json")
    message = str(caught.value)
    assert message.startswith("split: 20,000,000 ratings (data/raw/dataset.json) need an estimated 3.1 GB")
    assert "data.max_memory_gb = 3" in message
    check_memory("split", 20_000_000, 3.2, "data/raw/dataset.json")  # under the limit: passes
    check_memory("promote", 10**12, 0.001, "x")  # not a guarded stage


def test_ingest_sizes_the_data_from_the_params(tmp_path: Path):
    synthetic = parse_params({"data": {"synthetic": {"n_users": 1000, "n_movies": 1000, "n_ratings": 300_000}}})
    assert dataset_ratings("ingest", synthetic, tmp_path / "none.json") == (300_000, "data.synthetic.n_ratings")
    release = parse_params({"data": {"source": "ml-25m"}})
    assert dataset_ratings("ingest", release, tmp_path / "none.json") == (25_000_095, "the size of ml-25m")


@pytest.mark.parametrize("source", ["files", "sql"])
def test_ingest_of_own_data_is_not_sized_before_reading(tmp_path: Path, source: str):
    assert dataset_ratings("ingest", parse_params({"data": {"source": source}}), tmp_path / "none.json") is None


def test_later_stages_read_dataset_json_and_skip_without_it(tmp_path: Path):
    params = parse_params({})
    meta = tmp_path / "dataset.json"
    assert dataset_ratings("features", params, meta) is None
    meta.write_text(json.dumps({"n_ratings": 1234}))
    assert dataset_ratings("features", params, meta) == (1234, str(meta))
    meta.write_text("{not json")
    assert dataset_ratings("features", params, meta) is None


def test_cli_stops_a_too_large_stage_before_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("data:\n  max_memory_gb: 1.0\n")
    Path("data/raw").mkdir(parents=True)
    Path("data/raw/dataset.json").write_text(json.dumps({"n_ratings": 25_000_000}))
    result = runner.invoke(app, ["split"])  # would fail on the missing ratings file if it ran
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: split: 25,000,000 ratings (data/raw/dataset.json) need an estimated")
    assert "data.max_memory_gb = 1" in lines[0]
    assert not Path("data/split").exists()


def test_ingest_refuses_a_synthetic_size_over_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    size = "  synthetic:\n    n_users: 100000\n    n_movies: 50000\n    n_ratings: 100000000\n"
    Path("params.yaml").write_text("data:\n  max_memory_gb: 8.0\n" + size)
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1
    assert "ingest: 100,000,000 ratings (data.synthetic.n_ratings) need an estimated" in result.output
    assert not Path("data").exists()
