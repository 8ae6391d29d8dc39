"""A team's own ratings and movies (data.source: files | sql) -> the data contract, with id maps.

Reading gives two frames whose columns already carry the contract's names (chosen through
`data.columns`) but the source's values; `normalise` then turns them into the contract: ids by the
rule of pipeline/data/ids.py, ratings checked against `data.rating_scale`, timestamps (unix seconds
or ISO 8601 text, UTC when no zone is given) as unix seconds, genres split on `data.genre_separator`
and joined with '|', a missing year taken from a trailing "(YYYY)" of the title. Every problem is
one DataError naming the file (or query), the source's column, a count and an example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ColumnsParams, FilesParams, RatingScaleParams
from pipeline.data.ids import map_ids
from pipeline.data.movielens import GENRE_SPELLING, NO_GENRE, year_from_title
from pipeline.data.schema import (
    GENRE_SEPARATOR,
    GENRES,
    MOVIE,
    MOVIES_COLUMNS,
    RATING,
    RATINGS_COLUMNS,
    TIMESTAMP,
    TITLE,
    USER,
    YEAR,
    conform_movies,
    conform_ratings,
)
from pipeline.errors import DataError, data_error

COMPRESSIONS = (".gz", ".bz2", ".zst", ".xz")
FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ID_COLUMNS = (USER, MOVIE)
EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class Tables:
    """What a reader returns: ratings and movies under the contract's column names, the source's values,
    and the names to put in error messages (file or query; the source's column names)."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    ratings_file: str
    movies_file: str
    names: dict[str, str]


@dataclass(frozen=True)
class OwnData:
    """Own data in the contract, and the two id maps (data/raw/id_map/)."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    user_ids: pd.DataFrame
    movie_ids: pd.DataFrame
    rules: dict[str, str]


def ratings_columns(columns: ColumnsParams) -> dict[str, str]:
    """contract column -> source column, for the ratings."""
    return {USER: columns.user, MOVIE: columns.movie, RATING: columns.rating, TIMESTAMP: columns.timestamp}


def movies_columns(columns: ColumnsParams) -> dict[str, str]:
    """contract column -> source column, for the movies (genres and year only when mapped)."""
    mapped = {MOVIE: columns.movie, TITLE: columns.title, GENRES: columns.genres, YEAR: columns.year}
    return {k: v for k, v in mapped.items() if v is not None}


def select_columns(frame: pd.DataFrame, wanted: dict[str, str], file: str) -> pd.DataFrame:
    """`frame`'s mapped columns renamed to the contract's names; a DataError lists the columns it has."""
    available = [str(c) for c in frame.columns]
    return rename_columns(frame[_checked(available, wanted, file)], wanted)


def _checked(available: list[str], wanted: dict[str, str], file: str) -> list[str]:
    missing = [f"{source} (data.columns.{_key(contract)})" for contract, source in wanted.items() if source not in available]
    if missing:
        raise data_error(file, f"has no column {', '.join(missing)}; its columns are {', '.join(available) or '(none)'}")
    return list(dict.fromkeys(wanted.values()))


def _key(contract: str) -> str:
    return {USER: "user", MOVIE: "movie"}.get(contract, contract)


def rename_columns(frame: pd.DataFrame, wanted: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({contract: frame[source].reset_index(drop=True) for contract, source in wanted.items()})


# ---------------------------------------------------------------- files


def file_format(path: str) -> str:
    """'csv' or 'parquet' from the extension (a compression suffix after .csv is allowed)."""
    name = PurePosixPath(path.split("?", 1)[0]).name.lower()
    for suffix in COMPRESSIONS:
        if name.endswith(".csv" + suffix) or name.endswith(".tsv" + suffix):
            name = name.removesuffix(suffix)
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise data_error(
        path, f"has an unknown extension; expected one of {', '.join(FORMATS)} (csv also compressed: {', '.join(COMPRESSIONS)})"
    )


def _filesystem(path: str) -> tuple[Any, str]:
    """fsspec's filesystem and path for a local path or URL; a missing file or driver is a DataError."""
    import fsspec

    try:
        fs, inner = fsspec.core.url_to_fs(path)
        found = fs.isfile(inner)
    except ImportError as exc:  # fsspec names the package of the URL's scheme, e.g. s3fs for s3://
        raise data_error(path, f"cannot be read: {exc} (uv pip install it into .venv)") from None
    except (OSError, ValueError) as exc:
        raise data_error(path, f"cannot be reached ({type(exc).__name__}: {exc})") from None
    if not found:
        local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        raise data_error(path, "file not found" if local else "not found (or not reachable)")
    return fs, inner


def read_file(path: str, wanted: dict[str, str]) -> pd.DataFrame:
    """The mapped columns of one CSV or Parquet file, under the contract's names.

    CSV id columns are read as text, so "007" stays distinct from "7" (pipeline/data/ids.py); no
    text is taken for a missing value but an empty cell ('' here: an id "NA" is an id)."""
    kind = file_format(path)
    fs, inner = _filesystem(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            with fs.open(inner, "rb") as handle:
                table = pq.ParquetFile(handle)
                columns = _checked(list(table.schema_arrow.names), wanted, path)
                frame = table.read(columns=columns).to_pandas()
        else:
            options: dict[str, Any] = {"sep": "\t" if ".tsv" in PurePosixPath(path).name.lower() else ","}
            header = pd.read_csv(path, nrows=0, **options)
            columns = _checked([str(c) for c in header.columns], wanted, path)
            text = {wanted[c]: str for c in ID_COLUMNS if c in wanted}
            frame = pd.read_csv(path, usecols=columns, dtype=text, keep_default_na=False, **options)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise data_error(path, "is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise data_error(path, f"cannot be parsed: {str(exc).strip().splitlines()[-1]}") from None
    except Exception as exc:  # pyarrow and fsspec raise many unrelated types for unreadable files
        raise data_error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise data_error(path, "has no rows")
    return rename_columns(frame, wanted)


def read_files(files: FilesParams, columns: ColumnsParams) -> Tables:
    """data.source: files."""
    ratings = read_file(files.ratings, ratings_columns(columns))
    movies = read_file(files.movies, movies_columns(columns))
    return Tables(ratings, movies, files.ratings, files.movies, source_names(columns))


def source_names(columns: ColumnsParams) -> dict[str, str]:
    return {**ratings_columns(columns), **movies_columns(columns)}


# ---------------------------------------------------------------- normalising


def _blank_to_na(series: pd.Series) -> pd.Series:
    """'' (what a CSV read without NA detection gives for an empty cell) -> missing."""
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        return series.mask(series.astype(str).str.strip() == "")
    return series


def to_unix_seconds(series: pd.Series, file: str, column: str) -> pd.Series:
    """Timestamps as int64 unix seconds: whole numbers are taken as seconds, datetimes and ISO 8601
    text converted (UTC when they name no zone, sub-seconds floored)."""
    if series.isna().any():
        rows = series.index[series.isna()][:3].map(lambda i: f"row {i}")
        raise data_error(file, "have no timestamp (missing value)", column=column, count=int(series.isna().sum()), examples=rows)
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        return ((stamps - EPOCH) // pd.Timedelta(seconds=1)).astype("int64")
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            raise data_error(file, "are not whole unix seconds", column=column, count=int(bad.sum()), examples=series[bad])
        return series.astype("int64")
    text = series.astype(str).str.strip()
    numeric = text.str.fullmatch(r"-?[0-9]+")
    seconds = pd.Series(np.zeros(len(text), dtype=np.int64), index=series.index)
    seconds[numeric] = text[numeric].astype("int64")
    if (~numeric).any():
        parsed = pd.to_datetime(text[~numeric], utc=True, format="ISO8601", errors="coerce")
        bad = parsed.isna()
        if bad.any():
            raise data_error(
                file,
                "are neither unix seconds nor ISO 8601 date/times",
                column=column,
                count=int(bad.sum()),
                examples=text[~numeric][bad],
            )
        seconds[~numeric] = ((parsed - EPOCH) // pd.Timedelta(seconds=1)).astype("int64")
    return seconds


def check_scale(ratings: pd.Series, scale: RatingScaleParams, file: str, column: str) -> pd.Series:
    """The ratings as float64; a DataError for ratings that are not numbers or not on the scale."""
    values = pd.to_numeric(ratings, errors="coerce").astype("float64")
    bad = values.isna()
    if bad.any():
        raise data_error(file, "are not numbers", column=column, count=int(bad.sum()), examples=ratings[bad])
    steps = (values - scale.min) / scale.step
    off = (values < scale.min - 1e-9) | (values > scale.max + 1e-9) | ((steps - steps.round()).abs() > 1e-6)
    if off.any():
        allowed = f"{scale.min:g}..{scale.max:g} in steps of {scale.step:g} (data.rating_scale)"
        raise data_error(file, f"are outside the rating scale {allowed}", column=column, count=int(off.sum()), examples=values[off])
    return values


def normalise_genres(genres: pd.Series, separator: str) -> pd.Series:
    """Genres joined by `separator` -> '|'-joined (names stripped, empty and "no genre" labels dropped,
    older MovieLens spellings mapped as for the releases)."""
    parts = genres.fillna("").astype(str).str.split(separator, regex=False).explode().str.strip()
    parts = parts[(parts != "") & ~parts.isin(NO_GENRE)].replace(GENRE_SPELLING)
    joined = parts.groupby(level=0).agg(GENRE_SEPARATOR.join)
    return joined.reindex(genres.index, fill_value="").astype(object)


def _years(movies: pd.DataFrame, titles: pd.Series, file: str, column: str | None) -> pd.Series:
    from_title = year_from_title(titles)
    if YEAR not in movies.columns:
        return from_title
    raw = _blank_to_na(movies[YEAR])
    years = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & (years.isna() | (years != np.floor(years)))
    if bad.any():
        raise data_error(file, "are not whole years", column=column, count=int(bad.sum()), examples=raw[bad])
    return years.round().astype("Int64").fillna(from_title)


def _unique_movies(movies: pd.DataFrame, source_ids: pd.Series, file: str, column: str) -> pd.DataFrame:
    """Exact duplicate rows collapse to one; the same id with another title, genres or year is an error."""
    keep = ~movies.duplicated()
    movies, source_ids = movies[keep], source_ids[keep]
    clash = movies[MOVIE].duplicated(keep=False).to_numpy()
    if clash.any():
        first = movies[MOVIE].to_numpy()[clash][0]
        rows = movies[movies[MOVIE] == first]
        example = f"{source_ids[movies[MOVIE] == first].iloc[0]}: " + " / ".join(map(repr, rows[TITLE]))
        raise data_error(
            file,
            "share a movie id but differ in title, genres or year",
            column=column,
            count=int(clash.sum()),
            examples=[example],
        )
    return movies.reset_index(drop=True)


def normalise(tables: Tables, scale: RatingScaleParams, separator: str) -> OwnData:
    """Own tables (see `Tables`) -> the data contract and the id maps."""
    ratings, movies, names = tables.ratings, tables.movies, tables.names
    rfile, mfile = tables.ratings_file, tables.movies_file
    movie_source = _blank_to_na(movies[MOVIE])
    users = map_ids([_blank_to_na(ratings[USER])], USER, [rfile], [names[USER]])
    movie_ids = map_ids([_blank_to_na(ratings[MOVIE]), movie_source], MOVIE, [rfile, mfile], [names[MOVIE]] * 2)
    out_ratings = pd.DataFrame(
        {
            USER: users.columns[0],
            MOVIE: movie_ids.columns[0],
            RATING: check_scale(ratings[RATING], scale, rfile, names[RATING]),
            TIMESTAMP: to_unix_seconds(ratings[TIMESTAMP], rfile, names[TIMESTAMP]),
        }
    )
    titles = movies[TITLE].fillna("").astype(str).str.strip()
    genres = normalise_genres(movies[GENRES], separator) if GENRES in movies.columns else pd.Series("", index=movies.index, dtype=object)
    out_movies = pd.DataFrame(
        {
            MOVIE: movie_ids.columns[1],
            TITLE: titles.astype(object),
            YEAR: _years(movies, titles, mfile, names.get(YEAR)),
            GENRES: genres,
        }
    )
    out_movies = _unique_movies(out_movies, movie_source.astype(str).reset_index(drop=True), mfile, names[MOVIE])
    return OwnData(
        ratings=conform_ratings(out_ratings[list(RATINGS_COLUMNS)], rfile),
        movies=conform_movies(out_movies[list(MOVIES_COLUMNS)], mfile),
        user_ids=users.id_map,
        movie_ids=movie_ids.id_map,
        rules={USER: users.rule, MOVIE: movie_ids.rule},
    )


def sort_canonically(data: OwnData) -> OwnData:
    """Rows in an order fixed by their content alone (ratings by user, movie, time, rating; movies by id):
    a database returns rows in no guaranteed order, and ingest must write the same bytes for the same table."""
    r = data.ratings
    order = np.lexsort((r[RATING].to_numpy(), r[TIMESTAMP].to_numpy(), r[MOVIE].to_numpy(), r[USER].to_numpy()))
    movies = data.movies.sort_values(MOVIE, kind="stable").reset_index(drop=True)
    return OwnData(r.iloc[order].reset_index(drop=True), movies, data.user_ids, data.movie_ids, data.rules)
