"""One entry point over every data source, and the dataset.json summary of what was loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.choices import OWN_SOURCES, SYNTHETIC
from pipeline.config import DataParams
from pipeline.data import movielens, own, synthetic
from pipeline.data.schema import MOVIE, USER, RatingScale, conform_movies, conform_ratings


@dataclass(frozen=True)
class IdMaps:
    """Own data only: contract id -> the source's id text (pipeline/data/ids.py), and the rule applied."""

    users: pd.DataFrame
    movies: pd.DataFrame
    rules: dict[str, str]


@dataclass(frozen=True)
class Dataset:
    """What ingest writes: both frames in the data contract, the rating scale, the id maps (own data)."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    scale: RatingScale
    id_maps: IdMaps | None = None


def load_own(data: DataParams) -> Dataset:
    """data.source files | sql. Database rows are put in a content-defined order (`own.sort_canonically`)
    so that an unchanged table gives byte-identical outputs; files keep their row order."""
    if data.source == "files":
        loaded = own.normalise(own.read_files(data.files, data.columns), data.rating_scale, data.genre_separator)
    else:
        from pipeline.data import sql

        loaded = own.sort_canonically(own.normalise(sql.read_sql(data.sql, data.columns), data.rating_scale, data.genre_separator))
    scale = RatingScale(data.rating_scale.min, data.rating_scale.max, data.rating_scale.step)
    return Dataset(loaded.ratings, loaded.movies, scale, IdMaps(loaded.user_ids, loaded.movie_ids, loaded.rules))


def load_dataset(data: DataParams) -> Dataset:
    """Everything ingest needs from `data.source`."""
    if data.source in OWN_SOURCES:
        return load_own(data)
    return Dataset(*load_source(data))


def load_source(data: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, RatingScale]:
    """(ratings, movies, scale) of `data.source`, both frames already in the data contract."""
    if data.source in OWN_SOURCES:
        dataset = load_own(data)
        return dataset.ratings, dataset.movies, dataset.scale
    if data.source == SYNTHETIC:
        ratings, movies = synthetic.generate(data.synthetic)
        return conform_ratings(ratings, "synthetic ratings"), conform_movies(movies, "synthetic movies"), synthetic.SCALE
    ratings, movies = movielens.load(data.source, data)  # the readers conform, naming the file on error
    return ratings, movies, movielens.RELEASES[data.source].scale


def fingerprint(ratings: pd.DataFrame, movies: pd.DataFrame) -> str:
    """sha256 (hex) of both frames' column names and row hashes: same data -> same fingerprint."""
    digest = hashlib.sha256()
    for frame in (ratings, movies):
        digest.update("\x1f".join(map(str, frame.columns)).encode() + b"\x1e")
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def dataset_metadata(
    ratings: pd.DataFrame, movies: pd.DataFrame, source: str, scale: RatingScale, id_maps: IdMaps | None = None
) -> dict[str, Any]:
    """The dataset.json record: source, rating scale, sizes and fingerprint (own data: also the id rules)."""
    meta = {
        "source": source,
        **scale.to_meta(),
        "n_ratings": len(ratings),
        "n_users": int(ratings[USER].nunique()),
        "n_movies": len(movies),
        "fingerprint": fingerprint(ratings, movies),
    }
    if id_maps is not None:
        meta["ids"] = {USER: id_maps.rules[USER], MOVIE: id_maps.rules[MOVIE]}
    return meta
