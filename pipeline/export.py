"""`recsys export`: the recommend stage's top_k.parquet as a CSV file or as a table of the SQL source's database.

top_k.parquet holds the contract's ids, like every pipeline output. An id kind that ingest replaced
by hashes (own data with text ids: the `ids` rule of dataset.json, which the recommend stage copies
into meta.json) is written as the source's own id text, looked up in data/raw/id_map/, so the rows
join the source's tables; ids kept as they were are written unchanged (integers).

Either target is replaced as a whole or not at all: the CSV goes to a temporary sibling renamed at
the end; the table is dropped, created and filled in one transaction (`sql.replace_table`). The file
is read a batch of rows at a time, so memory does not grow with its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from pipeline.batch import RANK, SCORE, TOP_K_COLUMNS
from pipeline.config import SqlParams
from pipeline.data.ids import HASHED, to_source_ids
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError, data_error
from pipeline.io import atomic_outputs, read_json
from pipeline.paths import DEFAULT_LAYOUT, ID_MAP_MOVIES, ID_MAP_USERS

BATCH_ROWS = 1 << 16
ID_MAP_FILES = {USER: ID_MAP_USERS, MOVIE: ID_MAP_MOVIES}


@dataclass(frozen=True)
class TopK:
    """top_k.parquet and, per hashed id kind, the map back to the source's ids."""

    file: Path
    id_maps: dict[str, pd.DataFrame]

    @property
    def text_ids(self) -> set[str]:
        """The id columns written as the source's text."""
        return set(self.id_maps)

    def frames(self) -> Iterator[pd.DataFrame]:
        """The rows, BATCH_ROWS at a time, with the source's ids."""
        for batch in pq.ParquetFile(self.file).iter_batches(batch_size=BATCH_ROWS, columns=list(TOP_K_COLUMNS)):
            yield self._source_ids(batch.to_pandas())

    def _source_ids(self, frame: pd.DataFrame) -> pd.DataFrame:
        for kind, id_map in self.id_maps.items():
            mapped = to_source_ids(frame[kind], id_map, kind)
            missing = mapped.isna().to_numpy()
            if missing.any():
                raise data_error(
                    str(self.file), f"have no source id in {ID_MAP_FILES[kind]} of data/raw/id_map (rerun `dvc repro`)",
                    column=kind, count=int(missing.sum()), examples=frame.loc[missing, kind],
                )  # fmt: skip
            frame[kind] = mapped.to_numpy()
        return frame


def files_under(data_dir: Path) -> tuple[Path, Path, Path]:
    """(top_k.parquet, its meta.json, the id_map folder) below the pipeline's data folder `data_dir`."""
    layout = DEFAULT_LAYOUT

    def below(path: Path) -> Path:
        return data_dir / path.relative_to(layout.data)

    return below(layout.top_k), below(layout.top_k_meta), below(layout.raw_id_map)


def open_top_k(data_dir: Path) -> TopK:
    """The recommend stage's output below `data_dir`, or a DataError naming what is missing or wrong."""
    top_k, meta_file, id_map_dir = files_under(data_dir)
    for path in (top_k, meta_file):
        if not path.is_file():
            raise DataError(f"{path}: not found; run the recommend stage first (dvc repro recommend)")
    try:
        names = pq.read_schema(top_k).names
    except Exception as exc:  # pyarrow raises several kinds for a file that is not parquet
        raise DataError(f"{top_k}: not a parquet file ({exc})") from None
    if sorted(names) != sorted(TOP_K_COLUMNS):
        raise DataError(f"{top_k}: expected columns {', '.join(TOP_K_COLUMNS)}, found {', '.join(names) or 'none'}")
    rules = read_json(meta_file).get("ids", {})
    id_maps = {}
    for kind, name in ID_MAP_FILES.items():
        if rules.get(kind) == HASHED:
            path = id_map_dir / name
            if not path.is_file():
                raise DataError(f"{path}: not found; {kind} values were hashed by ingest and need it to be written as the source's ids")
            id_maps[kind] = pd.read_parquet(path)
    return TopK(top_k, id_maps)


def to_csv(top_k: TopK, target: Path) -> int:
    """Write every row to the CSV file `target` (header user_id,rank,movie_id,score); returns the rows."""
    rows = 0
    with atomic_outputs(target) as (tmp,), tmp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(TOP_K_COLUMNS) + "\n")
        for frame in top_k.frames():
            frame.to_csv(handle, header=False, index=False)
            rows += len(frame)
    return rows


def sql_columns(top_k: TopK) -> list[Any]:
    """The table's columns: ids as BIGINT (TEXT when written as the source's text), rank INTEGER, score DOUBLE."""
    from sqlalchemy import BigInteger, Column, Double, Integer, Text

    def id_type(kind: str) -> Any:
        return Text() if kind in top_k.text_ids else BigInteger()

    types = {USER: id_type(USER), RANK: Integer(), MOVIE: id_type(MOVIE), SCORE: Double()}
    return [Column(name, types[name], nullable=False) for name in TOP_K_COLUMNS]


def to_sql(top_k: TopK, sql: SqlParams, table: str) -> tuple[int, str]:
    """Replace `table` in the database of `sql.url_env` by every row; returns (rows, the masked URL)."""
    from pipeline.data.sql import replace_table

    return replace_table(sql, table, sql_columns(top_k), top_k.frames())
