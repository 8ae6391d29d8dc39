"""Source ids (integers or strings) -> the contract's int64 ids, and the maps back.

The rule, decided per id kind (users; movies across the ratings and movies tables together):

- every id written as a whole number (an integer column, or text such as "42") is kept as that
  number, so ids from MovieLens-style sources stay what they were;
- otherwise every id of that kind is replaced by a hash of its text: the first 8 bytes of its
  BLAKE2b digest, reduced to 1 .. 2**53 - 1.

A hash depends on the id alone, never on which other ids exist: appending ratings (and new users or
movies) to a source keeps every existing id's number, so models, registry versions and id maps
built before stay valid. 53 bits rather than 63 because such an id survives any float64 round trip
(a pandas column widened to float by a missing value, a JSON reader in JavaScript) exactly. Two
distinct source ids hashing to the same number (about n**2 / 2**54 expected for n ids: 0.006 for
10 million) stop ingest with both ids named rather than silently merging two users.

The id maps (`source_id` text, and `user_id` / `movie_id`) are written to data/raw/id_map/ so
later outputs can show the source's ids again (`to_source_ids`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import DataError, data_error

SOURCE_ID = "source_id"
HASH_MAX = (1 << 53) - 1
KEPT, HASHED = "source", "hashed"
# Text that reads back as the same int64: optional minus, no leading zeros, at most 18 digits.
WHOLE_NUMBER = r"-?(?:0|[1-9][0-9]{0,17})"


@dataclass(frozen=True)
class MappedIds:
    """Each input column as int64 ids, the map (source_id, <name>) sorted by id, and the rule used."""

    columns: list[pd.Series]
    id_map: pd.DataFrame
    rule: str


def hash_id(text: str) -> int:
    """The stable id of one source id's text: 1 .. 2**53 - 1."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HASH_MAX + 1


def hash_ids(texts: np.ndarray) -> np.ndarray:
    """`hash_id` of each text (one digest per distinct id, not per rating), int64."""
    return np.fromiter((hash_id(t) for t in texts), dtype=np.int64, count=len(texts))


def _check_present(series: pd.Series, file: str, column: str) -> None:
    missing = series.isna()
    if missing.any():
        rows = series.index[missing][:3].map(lambda i: f"row {i}")
        raise data_error(file, "have no id (missing value)", column=column, count=int(missing.sum()), examples=rows)


def _as_integers(series: pd.Series, file: str, column: str) -> pd.Series | None:
    """The ids as int64 when every one is a whole number, else None (they are then hashed as text)."""
    if pd.api.types.is_bool_dtype(series):
        raise data_error(file, "are true/false values, not ids", column=column, count=len(series), examples=series[:3])
    if pd.api.types.is_integer_dtype(series):
        return series.astype("int64")
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            raise data_error(file, "are not whole numbers", column=column, count=int(bad.sum()), examples=series[bad])
        return series.astype("int64")
    text = series.astype(str)
    distinct = pd.Series(text.unique())
    if distinct.str.fullmatch(WHOLE_NUMBER).all():
        return text.astype("int64")
    return None


def _text(series: pd.Series) -> pd.Series:
    """Each id's text: integers in decimal, everything else as written."""
    if pd.api.types.is_float_dtype(series):
        series = series.astype("int64")
    return series.astype(str)


def map_ids(columns: list[pd.Series], name: str, files: list[str], source_columns: list[str]) -> MappedIds:
    """Apply the module's rule to one id kind found in several columns (e.g. ratings' and movies' movie ids).

    `files` / `source_columns` name each column in errors. The map covers every distinct id of all columns.
    """
    for series, file, column in zip(columns, files, source_columns, strict=True):
        _check_present(series, file, column)
    as_integers = [_as_integers(s, f, c) for s, f, c in zip(columns, files, source_columns, strict=True)]
    integers = [ints for ints in as_integers if ints is not None]
    if len(integers) == len(as_integers):
        mapped = [ints.reset_index(drop=True) for ints in integers]
        distinct = np.unique(np.concatenate([m.to_numpy() for m in mapped]))
        id_map = pd.DataFrame({SOURCE_ID: pd.Series(distinct.astype(str), dtype=object), name: distinct})
        return MappedIds(mapped, id_map[[name, SOURCE_ID]], KEPT)
    codes, distinct = pd.factorize(pd.concat([_text(s) for s in columns], ignore_index=True))
    distinct = np.asarray(distinct, dtype=object)
    hashed = hash_ids(distinct)
    _check_collisions(distinct, hashed, name)
    ends = np.cumsum([len(s) for s in columns])[:-1]
    mapped = [pd.Series(part, dtype="int64") for part in np.split(hashed[codes], ends)]
    order = np.argsort(hashed, kind="stable")
    id_map = pd.DataFrame({name: hashed[order], SOURCE_ID: pd.Series(distinct[order], dtype=object)})
    return MappedIds(mapped, id_map, HASHED)


def _check_collisions(distinct: np.ndarray, hashed: np.ndarray, name: str) -> None:
    values, counts = np.unique(hashed, return_counts=True)
    if (counts > 1).any():
        clash = values[counts > 1][0]
        ids = [repr(t) for t in distinct[hashed == clash][:2]]
        raise DataError(
            f"{name}: source ids {' and '.join(ids)} hash to the same id {clash}; rename one of them in the source (or give integer ids)"
        )


def to_source_ids(ids: pd.Series | np.ndarray, id_map: pd.DataFrame, name: str) -> pd.Series:
    """The source's id text of each contract id (via data/raw/id_map/); <NA> for ids the map lacks."""
    lookup = pd.Series(id_map[SOURCE_ID].to_numpy(dtype=object), index=id_map[name].to_numpy(np.int64))
    return pd.Series(lookup.reindex(np.asarray(ids, dtype=np.int64)).to_numpy(), dtype=object)
