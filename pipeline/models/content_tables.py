"""The features stage's tables as both content models hold them (content.py's rating towers and
content_retrieval.py's ranking towers): one row of raw features per training user and per
catalogue movie, the no-history user, the scalers that standardise them, the catalogue, the seen
items and the rating range; with their checks, their standardised copies and their save/load.

Raw rows are what is saved (the scalers are saved beside them as JSON); the standardised inputs
are rebuilt on load, so a model file never holds two copies of a table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError, ModelError
from pipeline.features import Features, Scalers, no_history_user, scalers_from_dict, scalers_to_dict
from pipeline.models.base import Catalogue, SeenItems
from pipeline.models.content_input import feature_matrix, scaler_columns, standardise

CHUNK = 65_536  # rows per tower call and pairs per dot-product block at inference


class ContentTables:
    """Base of the two content models: the feature tables, set by `_set_tables` when training and
    by `_restore_tables` when loading. Subclasses add their own arrays and state beside these."""

    scalers: Scalers
    user_columns: list[str]
    movie_columns: list[str]
    user_ids: np.ndarray
    user_raw: np.ndarray
    movie_raw: np.ndarray
    no_history_raw: np.ndarray
    catalogue: Catalogue
    seen: SeenItems
    rating_range: tuple[float, float]

    def _set_tables(self, train: pd.DataFrame, features: Features, movies: pd.DataFrame, rating_range: tuple[float, float]) -> None:
        self.scalers = features.scalers
        self.user_columns = scaler_columns(self.scalers.user)
        self.movie_columns = scaler_columns(self.scalers.movie)
        users = features.users.sort_values(USER)
        self.user_ids = users[USER].to_numpy(np.int64)
        self.user_raw = feature_matrix(users, self.user_columns, "features users")
        self.catalogue = Catalogue.from_movies(movies)
        table = features.movies.sort_values(MOVIE)
        if not np.array_equal(table[MOVIE].to_numpy(np.int64), self.catalogue.movie_ids):
            raise DataError(
                "features movies: column 'movie_id': the movies features do not cover exactly the movies table; rerun the features stage"
            )
        self.movie_raw = feature_matrix(table, self.movie_columns, "features movies")
        self.no_history_raw = feature_matrix(no_history_user(train), self.user_columns, "no-history user")[0]
        self.seen = SeenItems.from_ratings(train, self.catalogue)
        self.rating_range = (float(rating_range[0]), float(rating_range[1]))

    def _standardise_tables(self) -> None:
        self.user_inputs = standardise(self.user_raw, self.scalers.user, self.user_columns)
        self.movie_inputs = standardise(self.movie_raw, self.scalers.movie, self.movie_columns)
        self.no_history_input = standardise(self.no_history_raw[None, :], self.scalers.user, self.user_columns)

    def _table_arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_ids": self.user_ids,
            "user_features": self.user_raw,
            "movie_features": self.movie_raw,
            "no_history_features": self.no_history_raw,
            **self.catalogue.to_arrays(),
            **self.seen.to_arrays(),
        }

    def _table_state(self) -> dict[str, Any]:
        return {
            "user_columns": self.user_columns,
            "movie_columns": self.movie_columns,
            "scalers": scalers_to_dict(self.scalers),
            "rating_range": list(self.rating_range),
        }

    def _restore_tables(self, arrays: dict[str, np.ndarray], state: dict[str, Any], state_file: Path) -> None:
        """The inverse of `_table_arrays` and `_table_state` (then `_standardise_tables`)."""
        self.scalers = scalers_from_dict(state["scalers"], str(state_file))
        self.user_columns = list(state["user_columns"])
        self.movie_columns = list(state["movie_columns"])
        if self.user_columns != scaler_columns(self.scalers.user) or self.movie_columns != scaler_columns(self.scalers.movie):
            raise ModelError(f"{state_file}: feature columns disagree with the stored scalers")
        low, high = state["rating_range"]
        self.rating_range = (float(low), float(high))
        self.user_ids = arrays["user_ids"].astype(np.int64)
        self.user_raw = arrays["user_features"]
        self.movie_raw = arrays["movie_features"]
        self.no_history_raw = arrays["no_history_features"]
        self.catalogue = Catalogue.from_arrays(arrays)
        self.seen = SeenItems.from_arrays(arrays)


def embed(tower: keras.Model, inputs: np.ndarray, embedding_dim: int) -> np.ndarray:
    """A tower's outputs for `inputs`, CHUNK rows per call (float32; zero rows give (0, dim))."""
    if len(inputs) == 0:
        return np.zeros((0, embedding_dim), np.float32)
    parts = [keras.ops.convert_to_numpy(tower(inputs[i : i + CHUNK], training=False)) for i in range(0, len(inputs), CHUNK)]
    return np.concatenate(parts).astype(np.float32)
