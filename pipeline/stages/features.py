"""Stage `features`: data/split/train.parquet + data/raw/movies.parquet -> data/features/ (one atomic folder).

Reads the training split only: the test split is never opened here.
"""

from __future__ import annotations

import pandas as pd

from pipeline import paths
from pipeline.config import Params
from pipeline.data.schema import conform_movies
from pipeline.features import build_features, save_features
from pipeline.io import atomic_outputs
from pipeline.stages.inputs import read_ratings, require


def run(params: Params) -> None:
    require(paths.TRAIN, paths.RAW_MOVIES)
    train = read_ratings(paths.TRAIN)  # user, movie, rating: the timestamps are not needed
    movies = conform_movies(pd.read_parquet(paths.RAW_MOVIES), str(paths.RAW_MOVIES))
    features = build_features(
        train, movies, params.features.genre_prior, train_file=str(paths.TRAIN), movies_file=str(paths.RAW_MOVIES)
    )
    with atomic_outputs(paths.FEATURES) as (folder,):
        save_features(features, folder)
    print(f"features: {len(features.users)} users, {len(features.movies)} movies (from {len(train)} train ratings)")
