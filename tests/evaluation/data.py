"""Tiny seeded datasets shared by the evaluation and baseline tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tiny_movies(n_movies: int = 12) -> pd.DataFrame:
    """Movies 10, 20, ... with titles 'Movie 10', ... in the data contract."""
    ids = np.arange(1, n_movies + 1, dtype=np.int64) * 10
    return pd.DataFrame(
        {
            "movie_id": ids,
            "title": [f"Movie {i}" for i in ids],
            "year": pd.array([2000] * n_movies, dtype="Int64"),
            "genres": ["Drama"] * n_movies,
        }
    )


def tiny_ratings(n_users: int = 8, n_movies: int = 12, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    """Each of users 1..n_users rates `per_user` distinct movies of tiny_movies(n_movies), half stars 0.5..5."""
    rng = np.random.default_rng(seed)
    movie_ids = tiny_movies(n_movies)["movie_id"].to_numpy()
    picks = np.argsort(rng.random((n_users, n_movies)), axis=1)[:, :per_user]
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user),
            "movie_id": movie_ids[picks.ravel()],
            "rating": rng.integers(1, 11, size=n_users * per_user) / 2.0,
            "timestamp": np.arange(n_users * per_user, dtype=np.int64) + 1_000_000_000,
        }
    )
