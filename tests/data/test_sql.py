"""data.source sql: SQLite files and a real PostgreSQL server, content-addressed output, masked credentials."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import DataParams, FilesParams, Params, SplitParams, SqlParams
from pipeline.data.ids import hash_id
from pipeline.data.sources import load_dataset
from pipeline.errors import DataError
from pipeline.paths import ID_MAP_MOVIES, ID_MAP_USERS, Layout
from pipeline.stages import ingest, split
from tests import postgres
from tests.factories import COLUMNS, sample_tables
from tests.servers import HOST

ENV = "RECSYS_TEST_DATABASE_URL"
PASSWORD = "s3cret-Pa55"
# The source's own names: text user ids, ratings in `stars`, times in `rated_at`.
RATINGS_QUERY = "SELECT who, item, stars, rated_at FROM ratings"
MOVIES_QUERY = "SELECT item, name, tags, released FROM movies"


def sql_params(url_env: str = ENV, ratings_query: str = RATINGS_QUERY, movies_query: str = MOVIES_QUERY, **sql) -> DataParams:
    return DataParams(
        source="sql", columns=COLUMNS,
        sql=SqlParams(url_env=url_env, ratings_query=ratings_query, movies_query=movies_query, **sql),
    )  # fmt: skip


def sqlite_database(path: Path, ratings: pd.DataFrame, movies: pd.DataFrame) -> Path:
    with sqlite3.connect(path) as db:
        ratings.to_sql("ratings", db, index=False)
        movies.astype({"released": "float64"}).to_sql("movies", db, index=False)
    return path


def as_files(tmp_path: Path, ratings: pd.DataFrame, movies: pd.DataFrame) -> DataParams:
    """The same tables as CSV files (data.source files), for comparing the two sources."""
    ratings.to_csv(tmp_path / "r.csv", index=False)
    movies.to_csv(tmp_path / "m.csv", index=False)
    return DataParams(source="files", files=FilesParams(ratings=str(tmp_path / "r.csv"), movies=str(tmp_path / "m.csv")), columns=COLUMNS)


def raw_bytes(layout: Layout) -> dict[Path, bytes]:
    files = [layout.raw_ratings, layout.raw_movies, layout.raw_meta, layout.raw_id_map / ID_MAP_USERS, layout.raw_id_map / ID_MAP_MOVIES]
    return {path: path.read_bytes() for path in files}


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path)


# ---- SQLite: no server -----------------------------------------------------------------------


def test_sqlite_gives_the_same_data_as_the_same_tables_in_files(layout, monkeypatch):
    ratings, movies = sample_tables()
    monkeypatch.setenv(ENV, f"sqlite:///{sqlite_database(layout.root / 'own.db', ratings, movies)}")
    from_sql = load_dataset(sql_params())
    from_files = load_dataset(as_files(layout.root, ratings, movies))
    order = from_files.ratings.sort_values(["user_id", "movie_id", "timestamp", "rating"]).index
    assert from_sql.ratings.equals(from_files.ratings.loc[order].reset_index(drop=True))  # sorted by content
    assert from_sql.movies.equals(from_files.movies)
    assert from_sql.ratings["user_id"].isin([hash_id(f"user-{u:02d}") for u in range(12)]).all()
    assert from_sql.movies["year"].tolist()[:4] == [1991, 1992, 1993, 1994]  # null column values: from the title


def test_ingest_on_an_unchanged_table_writes_byte_identical_files(layout, monkeypatch):
    ratings, movies = sample_tables()
    monkeypatch.setenv(ENV, f"sqlite:///{sqlite_database(layout.root / 'own.db', ratings, movies)}")
    ingest.run(Params(data=sql_params()), layout)
    first = raw_bytes(layout)
    shuffled = sql_params(ratings_query=RATINGS_QUERY + " ORDER BY random()", movies_query=MOVIES_QUERY + " ORDER BY random()")
    ingest.run(Params(data=shuffled), layout)  # the database may return rows in any order
    assert raw_bytes(layout) == first
    meta = json.loads(layout.raw_meta.read_text())
    assert meta["source"] == "sql" and meta["ids"] == {"user_id": "hashed", "movie_id": "source"}
    with sqlite3.connect(layout.root / "own.db") as db:  # one rating changes: so do the outputs
        db.execute("UPDATE ratings SET stars = CASE WHEN stars = 5.0 THEN 4.5 ELSE 5.0 END WHERE rowid = 1")
    ingest.run(Params(data=sql_params()), layout)
    assert layout.raw_ratings.read_bytes() != first[layout.raw_ratings]


def test_an_unset_url_variable_is_named(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(DataError, match=f"environment variable {ENV} is not set; set it to the database URL, e.g. sqlite:///"):
        load_dataset(sql_params())


def test_a_malformed_url_is_reported_without_echoing_it(monkeypatch):
    monkeypatch.setenv(ENV, f"not a url with {PASSWORD}")
    with pytest.raises(DataError, match=f"{ENV} does not hold a SQLAlchemy URL") as info:
        load_dataset(sql_params())
    assert PASSWORD not in str(info.value)


def test_a_missing_sqlite_file_is_named_and_not_created(layout, monkeypatch):
    monkeypatch.chdir(layout.root)  # the URL names a file relative to the working directory
    monkeypatch.setenv(ENV, "sqlite:///missing.db")
    with pytest.raises(DataError, match=r"^sqlite:///missing\.db: database file missing\.db not found$"):
        load_dataset(sql_params())
    assert not (layout.root / "missing.db").exists()


def test_a_missing_table_is_named(layout, monkeypatch):
    ratings, movies = sample_tables()
    monkeypatch.setenv(ENV, f"sqlite:///{sqlite_database(layout.root / 'own.db', ratings, movies)}")
    with pytest.raises(DataError, match=r"own\.db \(ratings query\): failed: no such table: rating$"):
        load_dataset(sql_params(ratings_query="SELECT * FROM rating"))


def test_a_mapping_naming_absent_columns_lists_the_query_columns(layout, monkeypatch):
    ratings, movies = sample_tables()
    monkeypatch.setenv(ENV, f"sqlite:///{sqlite_database(layout.root / 'own.db', ratings, movies)}")
    with pytest.raises(
        DataError, match=r"\(ratings query\): has no column who \(data\.columns\.user\); its columns are uid, item, stars, rated_at$"
    ):
        load_dataset(sql_params(ratings_query="SELECT who AS uid, item, stars, rated_at FROM ratings"))


def test_a_query_returning_nothing_is_named(layout, monkeypatch):
    ratings, movies = sample_tables()
    monkeypatch.setenv(ENV, f"sqlite:///{sqlite_database(layout.root / 'own.db', ratings, movies)}")
    with pytest.raises(DataError, match=r"\(movies query\): returned no rows"):
        load_dataset(sql_params(movies_query=MOVIES_QUERY + " WHERE 0"))


# ---- a database that cannot be reached: fails within the timeout, names host and database, never the password


def unreachable_message(url: str, timeout: float = 1.0) -> str:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra `postgres`) is not installed")
    with pytest.raises(DataError) as info:
        load_dataset(sql_params(connect_timeout_seconds=timeout))
    message = str(info.value)
    assert PASSWORD not in message and "\n" not in message
    return message


def test_a_closed_port_fails_naming_host_and_database(monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(ENV, f"postgresql+psycopg://alice:{PASSWORD}@{HOST}:{port}/movies")
    message = unreachable_message(ENV)
    assert message.startswith(
        f"postgresql+psycopg://alice:***@{HOST}:{port}/movies: "
        f"cannot connect to database 'movies' on host {HOST}:{port} (connect timeout 1 s): "
    )


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_after_the_timeout(monkeypatch):
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never speaks
        silent.bind((HOST, 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setenv(ENV, f"postgresql+psycopg://alice:{PASSWORD}@{HOST}:{port}/movies")
        message = unreachable_message(ENV, timeout=1.0)
    assert f"database 'movies' on host {HOST}:{port} (connect timeout 1 s)" in message
    assert re.search(r"no answer within 1 s|timeout expired", message.split("): ", 1)[1])  # ours, or libpq's at the same moment


# ---- PostgreSQL: a real server started by the tests ------------------------------------------


@pytest.fixture(scope="session")
def postgres_db():
    """A running PostgreSQL with database `movies` holding `sample_tables()` (skipped without binaries or driver)."""
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra `postgres`) is not installed")
    if postgres.binaries() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs them")
    ratings, movies = sample_tables()
    with postgres.postgres_server(PASSWORD) as server:
        dsn = dict(host=server.host, port=server.port, user=server.user, password=server.password)
        with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as admin:
            admin.execute("CREATE DATABASE movies")
        with psycopg.connect(dbname="movies", **dsn) as db:
            db.execute("CREATE TABLE ratings (who text, item bigint, stars numeric(2, 1), rated_at timestamptz)")
            db.execute("CREATE TABLE movies (item bigint PRIMARY KEY, name text, tags text, released integer)")
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO ratings VALUES (%s, %s, %s, to_timestamp(%s))",
                    [(r.who, int(r.item), float(r.stars), int(r.rated_at)) for r in ratings.itertuples()],
                )
                cursor.executemany(
                    "INSERT INTO movies VALUES (%s, %s, %s, %s)",
                    [(int(m.item), m.name, m.tags, None if pd.isna(m.released) else int(m.released)) for m in movies.itertuples()],
                )
        yield server, ratings, movies


def test_postgres_ingest_and_time_split(postgres_db, layout, monkeypatch, capsys):
    server, ratings, movies = postgres_db
    monkeypatch.setenv(ENV, server.url("movies"))
    ingest.run(Params(data=sql_params()), layout)
    first = raw_bytes(layout)
    expected = load_dataset(as_files(layout.root, ratings, movies))
    stored = pd.read_parquet(layout.raw_ratings)
    assert sorted(map(tuple, stored.to_numpy().tolist())) == sorted(map(tuple, expected.ratings.to_numpy().tolist()))
    assert pd.read_parquet(layout.raw_movies)["title"].tolist() == expected.movies["title"].tolist()
    cutoff = "2021-01-01"
    split.run(Params(split=SplitParams(strategy="time_cutoff", cutoff=cutoff)), layout)
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    moment = pd.Timestamp(cutoff, tz="UTC").timestamp()
    assert (train["timestamp"] < moment).all() and (test["timestamp"] >= moment).all() and len(train) + len(test) == 48
    shuffled = sql_params(ratings_query=RATINGS_QUERY + " ORDER BY random()")
    ingest.run(Params(data=shuffled), layout)
    assert raw_bytes(layout) == first  # content-addressed: DVC sees no change downstream
    output = capsys.readouterr().out + "".join(p.read_text(errors="replace") for p in layout.raw.rglob("*") if p.is_file())
    assert PASSWORD not in output


def test_postgres_missing_table_and_wrong_password_never_show_the_password(postgres_db, monkeypatch):
    server, _, _ = postgres_db
    monkeypatch.setenv(ENV, server.url("movies"))
    with pytest.raises(DataError, match=r'\(ratings query\): failed: relation "nope" does not exist$') as info:
        load_dataset(sql_params(ratings_query="SELECT * FROM nope"))
    assert PASSWORD not in str(info.value) and f"{server.user}:***@" in str(info.value)
    monkeypatch.setenv(ENV, server.url("movies").replace(PASSWORD, PASSWORD + "x"))
    with pytest.raises(DataError, match="cannot connect to database 'movies' on host .*password authentication failed") as info:
        load_dataset(sql_params())
    assert PASSWORD not in str(info.value)
