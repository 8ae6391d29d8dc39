"""`recsys export`: top_k.parquet as CSV or as a table of the SQL source's database, all or nothing."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline import export
from pipeline.batch import TOP_K_SCHEMA
from pipeline.cli import app
from pipeline.data.ids import HASHED, KEPT, SOURCE_ID, hash_id
from pipeline.paths import ID_MAP_USERS, Layout
from tests import postgres
from tests.servers import HOST

runner = CliRunner()
ENV = "RECSYS_TEST_EXPORT_URL"
PASSWORD = "s3cret-Pa55"
# two users' top 3, scores that need all 17 digits to survive a text round trip
TOP_K = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 7, 7, 7],
        "rank": [1, 2, 3, 1, 2, 3],
        "movie_id": [30, 10, 20, 10, 40, 30],
        "score": [0.9137264913, 0.1 + 0.2, -1.5e-17, 2.0, 1.0 / 3.0, -0.25],
    }
)


def lists(root: Path, frame: pd.DataFrame = TOP_K, ids: dict[str, str] | None = None) -> Path:
    """data/recommendations/ as the recommend stage writes it, below root/data; returns that data folder."""
    layout = Layout(root)
    layout.recommendations.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=TOP_K_SCHEMA, preserve_index=False), layout.top_k)
    layout.top_k_meta.write_text(json.dumps({"model": "cofi_ranking", "ids": ids or {"user_id": KEPT, "movie_id": KEPT}}))
    return layout.data


def params_file(root: Path, **sql: object) -> Path:
    path = root / "params.yaml"
    path.write_text(json.dumps({"recommend": {"table": "recs"}, "data": {"sql": {"url_env": ENV, **sql}}}))
    return path


def invoke(*args: str):
    return runner.invoke(app, ["export", *args])


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---- CSV ------------------------------------------------------------------------------------------


def test_csv_round_trip_gives_back_the_same_rows_and_exact_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "BATCH_ROWS", 4)  # two batches: one header, every row once
    data, target = lists(tmp_path), tmp_path / "out" / "top_k.csv"
    result = invoke("--csv", str(target), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"exported 6 rows of {data / 'recommendations/top_k.parquet'} to {target}"
    assert target.read_text().splitlines()[0] == "user_id,rank,movie_id,score"
    pd.testing.assert_frame_equal(pd.read_csv(target), TOP_K, check_exact=True)
    assert sorted(p.name for p in target.parent.iterdir()) == ["top_k.csv"]


def test_hashed_ids_are_written_as_the_source_ids(tmp_path):
    names = ["alice", "bob"]
    hashed = TOP_K.assign(user_id=TOP_K["user_id"].map({1: hash_id("alice"), 7: hash_id("bob")}))
    data = lists(tmp_path, hashed, ids={"user_id": HASHED, "movie_id": KEPT})
    (data / "raw" / "id_map").mkdir(parents=True)
    pd.DataFrame({"user_id": [hash_id(n) for n in names], SOURCE_ID: names}).to_parquet(data / "raw" / "id_map" / ID_MAP_USERS)
    target = tmp_path / "top_k.csv"
    assert invoke("--csv", str(target), "--data-dir", str(data)).exit_code == 0
    written = pd.read_csv(target)
    assert written["user_id"].tolist() == ["alice"] * 3 + ["bob"] * 3
    assert written["movie_id"].tolist() == TOP_K["movie_id"].tolist()


def test_an_id_missing_from_the_id_map_stops_the_export_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "BATCH_ROWS", 3)  # the unknown user is in the second batch
    hashed = TOP_K.assign(user_id=TOP_K["user_id"].map({1: hash_id("alice"), 7: 12345}))
    data = lists(tmp_path, hashed, ids={"user_id": HASHED, "movie_id": KEPT})
    (data / "raw" / "id_map").mkdir(parents=True)
    pd.DataFrame({"user_id": [hash_id("alice")], SOURCE_ID: ["alice"]}).to_parquet(data / "raw" / "id_map" / ID_MAP_USERS)
    target = tmp_path / "top_k.csv"
    line = error_line(invoke("--csv", str(target), "--data-dir", str(data)))
    assert line == (
        f"error: {data / 'recommendations/top_k.parquet'}: column 'user_id': 3 rows have no source id in users.parquet "
        "of data/raw/id_map (rerun `dvc repro`) (e.g. 12345, 12345, 12345)"
    )
    assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.glob(".top_k.csv*")) == []


def test_missing_lists_are_one_error_line(tmp_path):
    target = tmp_path / "top_k.csv"
    line = error_line(invoke("--csv", str(target), "--data-dir", str(tmp_path / "data")))
    missing = tmp_path / "data/recommendations/top_k.parquet"
    assert line == f"error: {missing}: not found; run the recommend stage first (dvc repro recommend)"
    assert not target.exists()


def test_a_file_that_is_not_the_lists_is_named(tmp_path):
    data = lists(tmp_path)
    pq.write_table(pa.table({"user_id": [1], "movie": [2]}), data / "recommendations" / "top_k.parquet")
    line = error_line(invoke("--csv", str(tmp_path / "x.csv"), "--data-dir", str(data)))
    assert line.endswith("top_k.parquet: expected columns user_id, rank, movie_id, score, found user_id, movie")


def test_exactly_one_target():
    assert error_line(invoke()) == "error: give exactly one of --csv PATH, --sql"
    assert error_line(invoke("--csv", "x.csv", "--sql")) == "error: give exactly one of --csv PATH, --sql"


# ---- SQLite ---------------------------------------------------------------------------------------


def old_database(path: Path) -> Path:
    """A database with the source's ratings and an earlier recs table."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ratings (who text, item integer)")
        db.execute("INSERT INTO ratings VALUES ('alice', 1)")
        db.execute("CREATE TABLE recs (user_id integer, note text)")
        db.execute("INSERT INTO recs VALUES (99, 'old')")
    return path


def table(path: Path, name: str) -> pd.DataFrame:
    with sqlite3.connect(path) as db:
        return pd.read_sql_query(f"SELECT * FROM {name}", db)


def test_sqlite_round_trip_replaces_the_table_named_by_the_params(tmp_path, monkeypatch):
    database = old_database(tmp_path / "source.db")
    monkeypatch.setenv(ENV, f"sqlite:///{database}")
    monkeypatch.setattr(export, "BATCH_ROWS", 4)
    result = invoke("--sql", "--data-dir", str(lists(tmp_path)), "--params", str(params_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"to table recs of sqlite:///{database}")
    pd.testing.assert_frame_equal(table(database, "recs"), TOP_K, check_exact=True)
    assert table(database, "ratings").to_dict("list") == {"who": ["alice"], "item": [1]}  # the rest of the database untouched


def test_a_failure_while_writing_leaves_the_old_table(tmp_path, monkeypatch):
    database = old_database(tmp_path / "source.db")
    monkeypatch.setenv(ENV, f"sqlite:///{database}")
    monkeypatch.setattr(export, "BATCH_ROWS", 3)  # the first batch is inserted before the second fails
    hashed = TOP_K.assign(user_id=TOP_K["user_id"].map({1: hash_id("alice"), 7: 12345}))
    data = lists(tmp_path, hashed, ids={"user_id": HASHED, "movie_id": KEPT})
    (data / "raw" / "id_map").mkdir(parents=True)
    pd.DataFrame({"user_id": [hash_id("alice")], SOURCE_ID: ["alice"]}).to_parquet(data / "raw" / "id_map" / ID_MAP_USERS)
    line = error_line(invoke("--sql", "--data-dir", str(data), "--params", str(params_file(tmp_path))))
    assert "column 'user_id': 3 rows have no source id" in line
    assert table(database, "recs").to_dict("list") == {"user_id": [99], "note": ["old"]}


def test_a_missing_database_or_variable_is_one_error_line(tmp_path, monkeypatch):
    data, params = lists(tmp_path), params_file(tmp_path)
    line = error_line(invoke("--sql", "--data-dir", str(data), "--params", str(params)))
    assert line.startswith(f"error: data.source sql: environment variable {ENV} is not set")
    monkeypatch.setenv(ENV, f"sqlite:///{tmp_path / 'none.db'}")
    line = error_line(invoke("--sql", "--data-dir", str(data), "--params", str(params)))
    assert line == f"error: sqlite:///{tmp_path / 'none.db'}: database file {tmp_path / 'none.db'} not found"
    assert not (tmp_path / "none.db").exists()


# ---- PostgreSQL --------------------------------------------------------------------------------------


def test_an_unreachable_server_is_named_without_the_password(tmp_path, monkeypatch):
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra `postgres`) is not installed")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(ENV, f"postgresql+psycopg://alice:{PASSWORD}@{HOST}:{port}/movies")
    result = invoke("--sql", "--data-dir", str(lists(tmp_path)), "--params", str(params_file(tmp_path, connect_timeout_seconds=1)))
    line = error_line(result)
    assert line.startswith(f"error: postgresql+psycopg://alice:***@{HOST}:{port}/movies: cannot connect to database 'movies' on host")
    assert PASSWORD not in result.output


@pytest.mark.slow
def test_postgres_round_trip_replaces_the_table(tmp_path, monkeypatch):
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra `postgres`) is not installed")
    if postgres.binaries() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs them")
    with postgres.postgres_server(PASSWORD) as server:
        dsn = {"host": server.host, "port": server.port, "user": server.user, "password": server.password, "dbname": "postgres"}
        with psycopg.connect(**dsn) as db:
            db.execute("CREATE TABLE recs (user_id bigint, note text)")
            db.execute("INSERT INTO recs VALUES (99, 'old')")
        monkeypatch.setenv(ENV, server.url())
        result = invoke("--sql", "--data-dir", str(lists(tmp_path)), "--params", str(params_file(tmp_path)))
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and f"{server.user}:***@" in result.output
        with psycopg.connect(**dsn) as db:
            rows = db.execute("SELECT user_id, rank, movie_id, score FROM recs ORDER BY user_id, rank").fetchall()
            types = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'recs'").fetchall())
    assert rows == list(TOP_K.itertuples(index=False, name=None))
    assert types == {"user_id": "bigint", "rank": "integer", "movie_id": "bigint", "score": "double precision"}
