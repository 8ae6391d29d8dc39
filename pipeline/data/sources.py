"""One entry point over every data source, and the dataset.json summary of what was loaded."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from pipeline.choices import SYNTHETIC
from pipeline.config import DataParams
from pipeline.data import movielens, synthetic
from pipeline.data.schema import USER, RatingScale, conform_movies, conform_ratings


def load_source(data: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, RatingScale]:
    """(ratings, movies, scale) of `data.source`, both frames already in the data contract."""
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


def dataset_metadata(ratings: pd.DataFrame, movies: pd.DataFrame, source: str, scale: RatingScale) -> dict[str, Any]:
    """The dataset.json record: source, rating scale, sizes and fingerprint."""
    return {
        "source": source,
        **scale.to_meta(),
        "n_ratings": int(len(ratings)),
        "n_users": int(ratings[USER].nunique()),
        "n_movies": int(len(movies)),
        "fingerprint": fingerprint(ratings, movies),
    }
