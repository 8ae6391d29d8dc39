"""One entry point over every data source, and the dataset.json summary of what was loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.choices import SYNTHETIC
from pipeline.config import DataParams
from pipeline.data import movielens, synthetic
from pipeline.data.schema import USER, conform_movies, conform_ratings


@dataclass(frozen=True)
class RatingScale:
    """The ratings a source can hold: min, min + step, ..., max."""

    min: float
    max: float
    step: float


def load_source(data: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, RatingScale]:
    """(ratings, movies, scale) of `data.source`, both frames already in the data contract."""
    if data.source == SYNTHETIC:
        ratings, movies = synthetic.generate(data.synthetic)
        scale = RatingScale(synthetic.RATING_MIN, synthetic.RATING_MAX, synthetic.RATING_STEP)
        return conform_ratings(ratings, "synthetic ratings"), conform_movies(movies, "synthetic movies"), scale
    ratings, movies = movielens.load(data.source, data)  # the readers conform, naming the file on error
    return ratings, movies, RatingScale(*movielens.RELEASES[data.source].scale)


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
        "rating_min": float(scale.min),
        "rating_max": float(scale.max),
        "rating_step": float(scale.step),
        "n_ratings": int(len(ratings)),
        "n_users": int(ratings[USER].nunique()),
        "n_movies": int(len(movies)),
        "fingerprint": fingerprint(ratings, movies),
    }
