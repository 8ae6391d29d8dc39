"""Stage `features`: data/split/train.parquet + data/raw/movies.parquet -> data/features/ (one atomic folder).

Reads the training split only: the test split is never opened here.
"""

from __future__ import annotations

from pipeline.config import Params
from pipeline.features import build_features, save_features
from pipeline.io import atomic_outputs
from pipeline.paths import Layout
from pipeline.stages.inputs import read_movies, read_ratings


def run(params: Params, layout: Layout) -> None:
    layout.require(layout.train, layout.raw_movies)
    train = read_ratings(layout.train)  # user, movie, rating: the timestamps are not needed
    movies = read_movies(layout)
    features = build_features(train, movies, params.features.genre_prior, train_file=str(layout.train), movies_file=str(layout.raw_movies))
    with atomic_outputs(layout.features) as (folder,):
        save_features(features, folder)
    print(f"features: {len(features.users)} users, {len(features.movies)} movies (from {len(train)} train ratings)")
