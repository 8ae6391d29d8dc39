"""Stage ingest: three outputs written together, deterministic, and untouched when anything fails."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import DataParams, Params, SyntheticParams, load_params
from pipeline.data import movielens
from pipeline.data.sources import fingerprint
from pipeline.errors import DataError
from pipeline.paths import ID_MAP_MOVIES, ID_MAP_USERS, Layout
from pipeline.stages import ingest
from tests.factories import offline_download

SMALL = Params(data=DataParams(synthetic=SyntheticParams(n_users=30, n_movies=100, n_ratings=1_000)))


@pytest.fixture
def layout(tmp_path, monkeypatch) -> Layout:
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)
    monkeypatch.setattr(movielens, "download", offline_download)
    return Layout(tmp_path)


@pytest.fixture
def at_root(layout, monkeypatch) -> Layout:
    """For the tests that run `recsys ingest` or read own files named relative to the working
    directory: the command works at the repository root, here the layout's."""
    monkeypatch.chdir(layout.root)
    return layout


def test_synthetic_ingest_writes_contract_files_and_metadata(layout):
    ingest.run(SMALL, layout)
    ratings, movies = pd.read_parquet(layout.raw_ratings), pd.read_parquet(layout.raw_movies)
    meta = json.loads(layout.raw_meta.read_text())
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
    assert sorted(p.name for p in layout.raw.iterdir()) == ["dataset.json", "movies.parquet", "ratings.parquet"]


def test_ingest_is_byte_for_byte_repeatable(layout):
    ingest.run(SMALL, layout)
    first = {p: p.read_bytes() for p in (layout.raw_ratings, layout.raw_movies, layout.raw_meta)}
    ingest.run(SMALL, layout)
    assert {p: p.read_bytes() for p in first} == first


def test_ml_latest_small_through_the_shared_mirror(layout, shared_datasets):
    ingest.run(Params(data=DataParams(source="ml-latest-small", mirror=str(shared_datasets))), layout)
    meta = json.loads(layout.raw_meta.read_text())
    assert (meta["n_ratings"], meta["n_users"], meta["n_movies"]) == (100_836, 610, 9_742)
    assert (meta["rating_min"], meta["rating_max"], meta["rating_step"]) == (0.5, 5.0, 0.5)
    assert len(pd.read_parquet(layout.raw_ratings)) == 100_836


def _old_outputs(layout):
    layout.raw.mkdir(parents=True)
    for path in (layout.raw_ratings, layout.raw_movies, layout.raw_meta):
        path.write_text(f"old {path.name}")


def _assert_old_outputs_untouched(layout):
    assert sorted(p.name for p in layout.raw.iterdir()) == ["dataset.json", "movies.parquet", "ratings.parquet"]
    for path in (layout.raw_ratings, layout.raw_movies, layout.raw_meta):
        assert path.read_text() == f"old {path.name}"


def test_failed_load_leaves_previous_outputs_untouched(layout):
    _old_outputs(layout)
    with pytest.raises(DataError, match="ml-1m.zip"):
        ingest.run(Params(data=DataParams(source="ml-1m", cache_dir=str(layout.root / "cache"))), layout)
    _assert_old_outputs_untouched(layout)


def test_failure_while_writing_leaves_previous_outputs_untouched(layout, monkeypatch):
    """ratings.parquet is already written to its temporary path when writing movies.parquet fails."""
    _old_outputs(layout)
    real_to_parquet = pd.DataFrame.to_parquet
    calls = []

    def to_parquet_then_disk_full(frame, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_parquet(frame, path, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet_then_disk_full)
    with pytest.raises(OSError, match="disk full"):
        ingest.run(SMALL, layout)
    assert len(calls) == 2
    _assert_old_outputs_untouched(layout)


def test_cli_offline_error_is_one_line_and_exit_1(at_root):
    layout = at_root
    (layout.root / "params.yaml").write_text("data:\n  source: ml-100k\n  cache_dir: cache\n")
    result = CliRunner().invoke(app, ["ingest", "--params", "params.yaml"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in lines[-1]
    assert "RECSYS_DATA_MIRROR" in lines[-1]
    assert not layout.raw.exists()


# ---- own data (data.source files | sql) -------------------------------------------------------

OWN_RATINGS = "uid,item,stars,when\nalice,1,4.5,2020-01-01\nbob,2,3,1600000000\nalice,2,5,2021-03-04T10:00:00Z\n"
OWN_MOVIES = "item,name,tags\n1,Heat (1995),Action|Crime\n2,Babylon 5,\n"
OWN_COLUMNS = {"user": "uid", "movie": "item", "rating": "stars", "timestamp": "when", "title": "name", "genres": "tags"}


def id_maps(layout: Layout) -> tuple[Path, Path]:
    return layout.raw_id_map / ID_MAP_USERS, layout.raw_id_map / ID_MAP_MOVIES


def own_params(workdir, ratings=OWN_RATINGS, movies=OWN_MOVIES, **data) -> Path:
    (workdir / "own").mkdir(exist_ok=True)
    (workdir / "own" / "ratings.csv").write_text(ratings)
    (workdir / "own" / "movies.csv").write_text(movies)
    params = {"source": "files", "files": {"ratings": "own/ratings.csv", "movies": "own/movies.csv"}, "columns": OWN_COLUMNS}
    file = workdir / "params.yaml"
    file.write_text(json.dumps({"data": {**params, **data}}))  # JSON is YAML
    return file


def test_own_files_ingest_writes_the_contract_and_the_id_maps(at_root):
    layout = at_root
    result = CliRunner().invoke(app, ["ingest", "--params", str(own_params(layout.root))])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(layout.raw).as_posix() for p in layout.raw.rglob("*.*")) == [
        "dataset.json", "id_map/movies.parquet", "id_map/users.parquet", "movies.parquet", "ratings.parquet",
    ]  # fmt: skip
    meta = json.loads(layout.raw_meta.read_text())
    assert (meta["source"], meta["n_ratings"], meta["n_users"], meta["n_movies"]) == ("files", 3, 2, 2)
    assert meta["ids"] == {"user_id": "hashed", "movie_id": "source"}
    users = pd.read_parquet(id_maps(layout)[0])
    ratings = pd.read_parquet(layout.raw_ratings).merge(users, on="user_id")
    assert ratings["source_id"].tolist() == ["alice", "bob", "alice"]


def test_a_later_run_without_id_maps_removes_the_stale_ones(at_root):
    layout = at_root  # data.files are relative to the working directory
    ingest.run(load_params(own_params(layout.root)), layout)
    assert id_maps(layout)[0].is_file()
    ingest.run(SMALL, layout)
    assert not layout.raw_id_map.exists()


def _sqlite(workdir) -> str:
    with sqlite3.connect(workdir / "own.db") as db:
        db.execute('CREATE TABLE ratings (uid TEXT, item INTEGER, stars REAL, "when" INTEGER)')
        db.execute("INSERT INTO ratings VALUES ('alice', 1, 4.5, 1600000000)")
    return f"sqlite:///{workdir / 'own.db'}"


def _closed_port_url() -> str:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra `postgres`) is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"postgresql+psycopg://alice:hunter2-secret@127.0.0.1:{sock.getsockname()[1]}/movies"


BAD_OWN_INPUT = {
    "missing file": (
        lambda w: own_params(w, files={"ratings": "own/nope.csv", "movies": "own/movies.csv"}),
        None,
        "own/nope.csv: file not found",
    ),
    "mapping names absent columns": (
        lambda w: own_params(w, columns={**OWN_COLUMNS, "rating": "score"}),
        None,
        "own/ratings.csv: has no column score (data.columns.rating); its columns are uid, item, stars, when",
    ),
    "unparseable timestamps": (
        lambda w: own_params(w, ratings=OWN_RATINGS.replace("2020-01-01", "01/13/2020 noon")),
        None,
        "column 'when': 1 row are neither unix seconds nor ISO 8601 date/times (e.g. '01/13/2020 noon')",
    ),
    "ratings outside the scale": (
        lambda w: own_params(w, rating_scale={"min": 1, "max": 5, "step": 1}),
        None,
        "column 'stars': 1 row are outside the rating scale 1..5 in steps of 1 (data.rating_scale) (e.g. 4.5)",
    ),
    "duplicate movie ids with different titles": (
        lambda w: own_params(w, movies=OWN_MOVIES + "2,Babylon 5 (1994),\n"),
        None,
        "share a movie id but differ in title, genres or year (e.g. \"2: 'Babylon 5' / 'Babylon 5 (1994)'\")",
    ),
    "missing table": (
        lambda w: own_params(
            w,
            source="sql",
            sql={"url_env": "RECSYS_TEST_DB", "ratings_query": "SELECT * FROM ratings", "movies_query": "SELECT * FROM movies"},
        ),
        _sqlite,
        "(movies query): failed: no such table: movies",
    ),
    "unreachable database": (
        lambda w: own_params(w, source="sql", sql={"url_env": "RECSYS_TEST_DB", "connect_timeout_seconds": 1}),
        lambda w: _closed_port_url(),
        "cannot connect to database 'movies' on host 127.0.0.1:",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OWN_INPUT))
def test_bad_own_input_is_one_error_exit_1_and_nothing_written(at_root, monkeypatch, case):
    layout = at_root
    make_params, make_url, expected = BAD_OWN_INPUT[case]
    params = make_params(layout.root)
    if make_url is not None:
        monkeypatch.setenv("RECSYS_TEST_DB", make_url(layout.root))
    _old_outputs(layout)
    layout.raw_id_map.mkdir()
    id_maps(layout)[0].write_text("old users.parquet")
    result = CliRunner().invoke(app, ["ingest", "--params", str(params)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
    assert "hunter2" not in result.output
    assert id_maps(layout)[0].read_text() == "old users.parquet" and not id_maps(layout)[1].exists()
    (layout.raw_id_map / ID_MAP_USERS).unlink()
    layout.raw_id_map.rmdir()
    _assert_old_outputs_untouched(layout)


def test_ml_latest_small_as_own_files_equals_the_movielens_source(at_root, shared_datasets):
    """The same release given as a team's export (renamed columns, text user ids, ';' genres) gives
    the same data/raw as data.source ml-latest-small, once the user ids are mapped back."""
    release = shared_datasets / "ml-latest-small"
    ratings = pd.read_csv(release / "ratings.csv")
    ratings.assign(userId="u" + ratings["userId"].astype(str)).rename(
        columns={"userId": "account", "movieId": "film", "rating": "stars", "timestamp": "rated_at"}
    ).to_csv(at_root.root / "ratings.csv", index=False)
    movies = pd.read_csv(release / "movies.csv", keep_default_na=False)
    movies.assign(genres=movies["genres"].str.replace("|", ";")).rename(columns={"movieId": "film", "title": "name"}).to_csv(
        at_root.root / "movies.csv", index=False
    )
    columns = {"user": "account", "movie": "film", "rating": "stars", "timestamp": "rated_at", "title": "name"}
    own = {"source": "files", "files": {"ratings": "ratings.csv", "movies": "movies.csv"}, "columns": columns,
           "genre_separator": ";"}  # fmt: skip
    layout = at_root  # data.files are relative to the working directory when not read from a params file
    ingest.run(Params(data=DataParams(**own)), layout)
    got_ratings, got_movies, got_meta = (
        pd.read_parquet(layout.raw_ratings),
        pd.read_parquet(layout.raw_movies),
        json.loads(layout.raw_meta.read_text()),
    )
    users = pd.read_parquet(id_maps(layout)[0]).set_index("user_id")["source_id"]
    ingest.run(Params(data=DataParams(source="ml-latest-small", mirror=str(shared_datasets))), layout)
    want_ratings, want_movies, want_meta = (
        pd.read_parquet(layout.raw_ratings),
        pd.read_parquet(layout.raw_movies),
        json.loads(layout.raw_meta.read_text()),
    )
    mapped_back = users.reindex(got_ratings["user_id"]).str.removeprefix("u").astype("int64").to_numpy()
    assert got_ratings.assign(user_id=mapped_back).equals(want_ratings)
    assert got_movies.equals(want_movies)  # whole-number movie ids kept; years from titles; genres re-joined
    assert got_meta["ids"] == {"user_id": "hashed", "movie_id": "source"}
    same = ("rating_min", "rating_max", "rating_step", "n_ratings", "n_users", "n_movies")
    assert {k: got_meta[k] for k in same} == {k: want_meta[k] for k in same}
