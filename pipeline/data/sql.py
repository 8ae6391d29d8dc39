"""data.source: sql. Two queries against a database named by a SQLAlchemy URL from the environment.

The URL is read from the environment variable `data.sql.url_env` only, so credentials never reach
params.yaml, dvc.lock, MLflow or any output; every message shows it with the password masked
(`masked`) and any error text from the driver has the password removed (`scrub`). SQLite needs no
server and no extra package (`sqlite:///path/to/ratings.db`); PostgreSQL needs the optional extra
`postgres` (psycopg 3: `postgresql+psycopg://user:password@host:5432/db`). A database that does not
answer within `data.sql.connect_timeout_seconds` fails naming its host and database.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pandas as pd

from pipeline.config import ColumnsParams, SqlParams
from pipeline.data.own import Tables, movies_columns, ratings_columns, select_columns, source_names
from pipeline.errors import DataError, data_error

EXAMPLE_URLS = "sqlite:///ratings.db or postgresql+psycopg://user:password@host:5432/db"
DRIVER_HINT = {"postgresql": "uv sync --extra postgres (psycopg 3)"}


def database_url(sql: SqlParams) -> Any:
    """The sqlalchemy URL held by the environment variable `sql.url_env`."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = os.environ.get(sql.url_env, "").strip()
    if not text:
        raise DataError(f"data.source sql: environment variable {sql.url_env} is not set; set it to the database URL, e.g. {EXAMPLE_URLS}")
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        raise DataError(
            f"data.source sql: environment variable {sql.url_env} does not hold a SQLAlchemy URL (e.g. {EXAMPLE_URLS})"
        ) from None


def masked(url: Any) -> str:
    """The URL with its password replaced by ***."""
    return url.render_as_string(hide_password=True)


def scrub(text: str, url: Any) -> str:
    """`text` without the URL's password (as written and as URL-encoded)."""
    if url.password:
        for secret in {str(url.password), quote_plus(str(url.password))}:
            text = text.replace(secret, "***")
    return text


def _where(url: Any) -> str:
    if url.get_backend_name() == "sqlite":
        return f"database file {url.database}"
    host = url.host or "localhost"
    return f"database {url.database!r} on host {host}{f':{url.port}' if url.port else ''}"


def connect_args(url: Any, timeout: float) -> dict[str, Any]:
    """The driver's own connect-timeout argument (SQLAlchemy has no portable one)."""
    backend = url.get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": max(1, math.ceil(timeout))}
    if backend == "sqlite":
        return {"timeout": timeout}
    return {}


def connect_within(engine: Any, timeout: float) -> Any:
    """engine.connect(), given up after `timeout` seconds whatever the driver does (libpq, for one, tries
    again without SSL and per address, each attempt with the full connect_timeout). A connection that
    is still pending is left to a daemon thread, which the driver's own timeout ends."""
    outcome: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def attempt() -> None:
        try:
            outcome.put((True, engine.connect()))
        except BaseException as exc:  # handed to the caller
            outcome.put((False, exc))

    threading.Thread(target=attempt, name="recsys-sql-connect", daemon=True).start()
    try:
        ok, value = outcome.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    if not ok:
        raise value
    return value


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def _engine(url: Any, sql: SqlParams) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError
    from sqlalchemy.pool import NullPool

    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(url.database).is_file():
        raise DataError(f"{masked(url)}: database file {url.database} not found")  # sqlite would create an empty one
    try:
        engine = create_engine(url, connect_args=connect_args(url, sql.connect_timeout_seconds), poolclass=NullPool)
    except (NoSuchModuleError, ImportError) as exc:
        hint = DRIVER_HINT.get(url.get_backend_name(), "install the database's SQLAlchemy driver")
        raise DataError(f"{masked(url)}: no driver for this database ({scrub(_first_line(exc), url)}); {hint}") from None
    if url.get_backend_name() == "sqlite":
        _transactional_sqlite(engine)
    return engine


def _transactional_sqlite(engine: Any) -> None:
    """Make SQLite transactions cover DDL too: Python's sqlite3 driver opens a transaction only before
    INSERT/UPDATE/DELETE, so a DROP TABLE would commit on its own (SQLAlchemy's documented recipe:
    the driver emits no BEGIN, SQLAlchemy emits one when a transaction starts)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def _query(connection: Any, query: str, label: str, url: Any) -> pd.DataFrame:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        frame = pd.read_sql_query(text(query), connection)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, SQLAlchemyError) else exc  # pandas wraps the driver's error
        raise DataError(f"{label}: failed: {scrub(_first_line(cause), url)}") from None
    if frame.empty:
        raise data_error(label, "returned no rows")
    return frame


@contextmanager
def connected(sql: SqlParams) -> Iterator[tuple[Any, Any]]:
    """(connection, URL) to the database of `sql.url_env`, closed afterwards; a DataError naming the host
    and database (never the password) when it cannot be reached within sql.connect_timeout_seconds."""
    from sqlalchemy.exc import SQLAlchemyError

    url = database_url(sql)
    engine = _engine(url, sql)
    try:
        try:
            connection = connect_within(engine, sql.connect_timeout_seconds)
        except (SQLAlchemyError, TimeoutError) as exc:
            raise DataError(
                f"{masked(url)}: cannot connect to {_where(url)} (connect timeout {sql.connect_timeout_seconds:g} s): "
                f"{scrub(_first_line(exc), url)}"
            ) from None
        with connection:
            yield connection, url
    finally:
        engine.dispose()


def read_sql(sql: SqlParams, columns: ColumnsParams) -> Tables:
    """data.source: sql: run both queries, keep the mapped columns under the contract's names."""
    with connected(sql) as (connection, url):
        labels = (f"{masked(url)} (ratings query)", f"{masked(url)} (movies query)")
        ratings = _query(connection, sql.ratings_query, labels[0], url)
        movies = _query(connection, sql.movies_query, labels[1], url)
    return Tables(
        select_columns(ratings, ratings_columns(columns), labels[0]),
        select_columns(movies, movies_columns(columns), labels[1]),
        labels[0],
        labels[1],
        source_names(columns),
    )


def replace_table(sql: SqlParams, name: str, columns: Iterable[Any], frames: Iterable[pd.DataFrame]) -> tuple[int, str]:
    """Replace table `name` (sqlalchemy `columns`) of the database of `sql.url_env` by the rows of
    `frames`, in one transaction: readers see the old table or the whole new one, and a failure
    (also one raised while `frames` is read) leaves the old table. Returns (rows written, masked URL)."""
    from sqlalchemy import MetaData, Table
    from sqlalchemy.exc import SQLAlchemyError

    table = Table(name, MetaData(), *columns)
    rows = 0
    with connected(sql) as (connection, url):
        try:
            with connection.begin():
                table.drop(connection, checkfirst=True)
                table.create(connection)
                for frame in frames:
                    if len(frame):
                        connection.execute(table.insert(), frame.to_dict("records"))
                        rows += len(frame)
        except SQLAlchemyError as exc:
            cause = scrub(_first_line(exc), url)
            raise DataError(f"{masked(url)}: table {name}: writing failed, the table is as it was: {cause}") from None
        return rows, masked(url)
