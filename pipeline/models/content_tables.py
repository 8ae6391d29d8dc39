"""The features stage's tables as both content models hold them (content.py's rating towers and
content_retrieval.py's ranking towers): one row of raw features per training user and per
catalogue movie, the no-history user, the scalers that standardise them, the catalogue, the seen
items and the rating range; with their checks, their standardised copies and their save/load.

Raw rows are what is saved (the scalers are saved beside them as JSON); the standardised inputs
are rebuilt on load, so a model file never holds two copies of a table.

Also here: what lets a loaded model score without TensorFlow. The towers' outputs for every
training user, the no-history user and every catalogue movie (`TowerVectors`) are computed once
from the trained network and saved with the tables; scoring those users and movies reads them. The
Keras network itself is read from the model folder only when something new must go through a tower
(a new user's ratings or genre tastes, a features table): `network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import keras
else:
    from pipeline.deferred import keras

from pipeline.config import ContentParams, ContentRankingParams
from pipeline.data.schema import MOVIE, USER
from pipeline.errors import DataError, ModelError
from pipeline.features import Features, Scalers, no_history_user, scalers_from_dict, scalers_to_dict
from pipeline.models.base import Catalogue, SeenItems, index_of
from pipeline.models.content_input import feature_matrix, scaler_columns, standardise

CHUNK = 65_536  # rows per tower call and pairs per dot-product block at inference
USER_TOWER = "user_tower"
MOVIE_TOWER = "movie_tower"
VECTOR_ARRAYS = ("vectors_users", "vectors_no_history", "vectors_movies", "vectors_unknown_movie")


@dataclass(frozen=True)
class TowerVectors:
    """The towers' outputs for what a trained model knows: `users` aligned with its user_ids, the
    no-history user (what an unknown user gets), the catalogue's movies in catalogue order, and a
    movie outside the catalogue (a zero-row array for a model that scores those without a vector)."""

    users: np.ndarray
    no_history: np.ndarray
    movies: np.ndarray
    unknown_movie: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(VECTOR_ARRAYS, (self.users, self.no_history, self.movies, self.unknown_movie), strict=True))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TowerVectors | None:
        """The saved vectors, or None for a model saved without them (then computed from the network)."""
        if not all(name in arrays for name in VECTOR_ARRAYS):
            return None
        return cls(*(arrays[name].astype(np.float32) for name in VECTOR_ARRAYS))


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
    kind: ClassVar[str]  # the model's name in error messages
    params: ContentParams | ContentRankingParams
    _network: keras.Model | None = None
    _network_file: Path | None = None  # where a loaded model's network is read from on first use
    _vectors: TowerVectors | None = None
    _tower_params: dict[str, int] | None = None

    # -- the network and what it computed --------------------------------------------------

    @property
    def network(self) -> keras.Model:
        """The trained Keras network (a loaded model reads it from its folder on first use)."""
        if self._network is None:
            if self._network_file is None:
                raise ModelError(f"{self.kind} model: not trained yet (call fit or load)")
            self._network = keras.models.load_model(self._network_file)
        return self._network

    def _set_network(self, network: keras.Model) -> None:
        """After training: the new network; the vectors and counts of an earlier one are dropped."""
        self._network, self._network_file, self._vectors, self._tower_params = network, None, None, None

    def _embed(self, tower_name: str, inputs: np.ndarray) -> np.ndarray:
        return embed(self.network.get_layer(tower_name), inputs, self.params.embedding_dim)

    def _compute_vectors(self) -> TowerVectors:
        raise NotImplementedError

    def tower_vectors(self) -> TowerVectors:
        """The saved (or, once, computed) `TowerVectors`."""
        if self._vectors is None:
            self._vectors = self._compute_vectors()
        return self._vectors

    def known_user_vectors(self, user_ids: np.ndarray) -> np.ndarray:
        """v_u per id from the saved vectors; ids outside training get the no-history user's."""
        vectors = self.tower_vectors()
        rows = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        picked = vectors.users[np.maximum(rows, 0)]  # a served request asks for one user: no copy of the whole table
        picked[rows < 0] = vectors.no_history
        return picked

    def tower_parameter_counts(self) -> dict[str, int]:
        """user_tower_params and movie_tower_params (saved with the model: counting needs no network)."""
        if self._tower_params is None:
            network = self.network
            self._tower_params = {
                "user_tower_params": int(network.get_layer(USER_TOWER).count_params()),
                "movie_tower_params": int(network.get_layer(MOVIE_TOWER).count_params()),
            }
        return self._tower_params

    def _save_network(self, directory: Path, keras_file: str) -> dict[str, np.ndarray]:
        """Writes the network; returns the vectors to save with the tables (see `_restore_network`)."""
        self.network.save(directory / keras_file)
        return self.tower_vectors().to_arrays()

    def _restore_network(self, network_file: Path, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._network, self._network_file = None, network_file
        self._vectors = TowerVectors.from_arrays(arrays)
        counts = state.get("tower_params")
        self._tower_params = {str(key): int(value) for key, value in counts.items()} if counts else None

    # -- tables ----------------------------------------------------------------------------

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
            "tower_params": self.tower_parameter_counts(),
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
