"""Stage ingest: three outputs written together, deterministic, and untouched when anything fails."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import DataParams, Params, SyntheticParams
from pipeline.data import movielens
from pipeline.data.sources import fingerprint
from pipeline.errors import DataError
from tests.factories import offline_download
from pipeline.paths import RAW, RAW_META, RAW_MOVIES, RAW_RATINGS
from pipeline.stages import ingest

SMALL = Params(data=DataParams(synthetic=SyntheticParams(n_users=30, n_movies=100, n_ratings=1_000)))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)
    monkeypatch.setattr(movielens, "download", offline_download)
    return tmp_path


def test_synthetic_ingest_writes_contract_files_and_metadata(workdir):
    ingest.run(SMALL)
    ratings, movies = pd.read_parquet(RAW_RATINGS), pd.read_parquet(RAW_MOVIES)
    meta = json.loads(RAW_META.read_text())
    assert meta == {
        "source": "synthetic",
        "rating_min": 0.5,
        "rating_max": 5.0,
        "rating_step": 0.5,
        "n_ratings": 1_000,
        "n_users": 30,
        "n_movies": 100,
        "fingerprint": fingerprint(ratings, movies),
    }
    assert list(ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert str(movies["year"].dtype) == "Int64"
    assert sorted(p.name for p in RAW.iterdir()) == ["dataset.json", "movies.parquet", "ratings.parquet"]


def test_ingest_is_byte_for_byte_repeatable(workdir):
    ingest.run(SMALL)
    first = {p: p.read_bytes() for p in (RAW_RATINGS, RAW_MOVIES, RAW_META)}
    ingest.run(SMALL)
    assert {p: p.read_bytes() for p in first} == first


def test_ml_latest_small_through_the_shared_mirror(workdir, shared_datasets):
    ingest.run(Params(data=DataParams(source="ml-latest-small", mirror=str(shared_datasets))))
    meta = json.loads(RAW_META.read_text())
    assert (meta["n_ratings"], meta["n_users"], meta["n_movies"]) == (100_836, 610, 9_742)
    assert (meta["rating_min"], meta["rating_max"], meta["rating_step"]) == (0.5, 5.0, 0.5)
    assert len(pd.read_parquet(RAW_RATINGS)) == 100_836


def _old_outputs():
    RAW.mkdir(parents=True)
    for path in (RAW_RATINGS, RAW_MOVIES, RAW_META):
        path.write_text(f"old {path.name}")


def _assert_old_outputs_untouched():
    assert sorted(p.name for p in RAW.iterdir()) == ["dataset.json", "movies.parquet", "ratings.parquet"]
    for path in (RAW_RATINGS, RAW_MOVIES, RAW_META):
        assert path.read_text() == f"old {path.name}"


def test_failed_load_leaves_previous_outputs_untouched(workdir):
    _old_outputs()
    with pytest.raises(DataError, match="ml-1m.zip"):
        ingest.run(Params(data=DataParams(source="ml-1m", cache_dir=str(workdir / "cache"))))
    _assert_old_outputs_untouched()


def test_failure_while_writing_leaves_previous_outputs_untouched(workdir, monkeypatch):
    """ratings.parquet is already written to its temporary path when writing movies.parquet fails."""
    _old_outputs()
    real_to_parquet = pd.DataFrame.to_parquet
    calls = []

    def to_parquet_then_disk_full(frame, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_parquet(frame, path, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet_then_disk_full)
    with pytest.raises(OSError, match="disk full"):
        ingest.run(SMALL)
    assert len(calls) == 2
    _assert_old_outputs_untouched()


def test_cli_offline_error_is_one_line_and_exit_1(workdir):
    (workdir / "params.yaml").write_text("data:\n  source: ml-100k\n  cache_dir: cache\n")
    result = CliRunner().invoke(app, ["ingest", "--params", "params.yaml"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in lines[-1]
    assert "RECSYS_DATA_MIRROR" in lines[-1]
    assert not RAW.exists()
