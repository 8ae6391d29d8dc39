"""Content-based recommender: the course's two-tower network over user and movie features.

One network for all users maps a user's features to v_u, one for all movies maps a movie's
features to v_m; both end in a linear layer of `embedding_dim` units and are L2-normalised, and
the prediction is v_u . v_m in [-1, 1], trained with MSE against the rating scaled to [-1, 1] by
the features stage's target MinMaxScaler, then mapped back to stars and clipped to the rating range.

Inputs are the features stage's tables (pipeline/features.py), standardised with its scalers.
Training streams mini-batches with tf.data (pipeline/models/content_input.py), each tower running
once per distinct user or movie of a batch; on several machines it runs under TensorFlow's
multi-worker strategy (pipeline/models/distributed.py).

Fallbacks (model contract): an unknown user gets the features of a user with no history
(`features.no_history_user`); a movie outside the catalogue gets the training mean rating. Every
catalogue movie has features, including those without training ratings (scored from year and
genres). `similar` ranks movies by squared Euclidean distance between embeddings (= 2 - 2 cos).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
else:
    from pipeline.deferred import keras, tf

from pipeline.config import ContentParams
from pipeline.data.schema import GENRE_VOCABULARY, MOVIE, RATING, TITLE, USER
from pipeline.errors import ConfigError, ModelError, RecsysError, data_error
from pipeline.features import Features
from pipeline.io import write_json
from pipeline.models.base import (
    ParameterCounts,
    ParameterTotal,
    TopList,
    TrainingData,
    check_pairs,
    index_of,
    load_arrays,
    model_file,
    rank_catalogue,
    read_model_meta,
    recommendation_frame,
    save_arrays,
    seen_exclusion,
    top_n,
)
from pipeline.models.content_input import feature_matrix, rating_batches, standardise, validation_split
from pipeline.models.content_tables import CHUNK, MOVIE_TOWER, USER_TOWER, ContentTables, TowerVectors
from pipeline.models.distributed import (
    MULTI_WORKER,
    WorkerTask,
    adapt_for_multi_worker,
    multi_worker_strategy,
    worker_failure,
    worker_failures,
)
from pipeline.models.ranking import SupportRanking
from pipeline.seeding import seed_everything

KERAS_FILE = "content.keras"
ARRAYS_FILE = "content.npz"
STATE_FILE = "content.json"
STEPS_PER_EXECUTION = 8  # batches per compiled call: less Python overhead per step, same results


# ---- network ------------------------------------------------------------------------------


def build_tower(name: str, n_inputs: int, layers: Sequence[int], embedding_dim: int) -> keras.Sequential:
    """relu hidden layers, a linear output of `embedding_dim` units, then L2 normalisation."""
    return keras.Sequential(
        [
            keras.Input((n_inputs,), name=f"{name}_input"),
            *[keras.layers.Dense(units, activation="relu", name=f"{name}_dense_{i}") for i, units in enumerate(layers)],
            keras.layers.Dense(embedding_dim, activation="linear", name=f"{name}_embedding"),
            keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2"),
        ],
        name=name,
    )


def build_network(n_user_inputs: int, n_movie_inputs: int, params: ContentParams) -> keras.Model:
    """The combined model: (user features, movie features) -> v_u . v_m (what is saved and served)."""
    user_tower = build_tower(USER_TOWER, n_user_inputs, params.user_layers, params.embedding_dim)
    movie_tower = build_tower(MOVIE_TOWER, n_movie_inputs, params.item_layers, params.embedding_dim)
    user_in = keras.Input((n_user_inputs,), name="user_features")
    movie_in = keras.Input((n_movie_inputs,), name="movie_features")
    dot = keras.layers.Dot(axes=1, name="dot")([user_tower(user_in), movie_tower(movie_in)])
    return keras.Model([user_in, movie_in], dot, name="two_tower")


def build_trainer(network: keras.Model, learning_rate: float, steps_per_execution: int = STEPS_PER_EXECUTION) -> keras.Model:
    """The training view of `network`, sharing its towers, compiled with Adam and MSE.

    Inputs are a batch's distinct users' and movies' features plus, per rating, the position of
    its user and movie among them: each tower runs once per distinct row of the batch and the
    embeddings are gathered back to the ratings. Same outputs and gradients as `network` on the
    per-rating rows, with fewer tower evaluations (about half at batch 1024 on ml-latest-small).
    """
    user_tower, movie_tower = network.get_layer(USER_TOWER), network.get_layer(MOVIE_TOWER)
    users = keras.Input(user_tower.input_shape[1:], name="batch_users")
    movies = keras.Input(movie_tower.input_shape[1:], name="batch_movies")
    user_index = keras.Input((), dtype="int32", name="user_index")
    movie_index = keras.Input((), dtype="int32", name="movie_index")
    v_user = keras.ops.take(user_tower(users), user_index, axis=0)
    v_movie = keras.ops.take(movie_tower(movies), movie_index, axis=0)
    dot = keras.layers.Dot(axes=1, name="dot")([v_user, v_movie])
    trainer = keras.Model([users, user_index, movies, movie_index], dot, name="two_tower_trainer")
    trainer.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mse",
        steps_per_execution=steps_per_execution,
        jit_compile=False,  # XLA gained nothing measurable on CPU and is off under op determinism anyway
    )
    return trainer


def genre_feature_row(
    prefs: Mapping[str, float], no_history_raw: np.ndarray, user_columns: Sequence[str], rating_range: tuple[float, float]
) -> np.ndarray:
    """Raw user features of a new user from stated genre ratings, e.g. {"Adventure": 5}.

    Starts from the no-history user (n_ratings 0, every average = the training mean) and sets
    each stated genre's average: unstated genres say nothing, so they keep the training mean.
    Genre names match case-insensitively; unknown names and ratings outside the range are errors.
    """
    if not prefs:
        raise RecsysError(f"give at least one genre rating, e.g. Adventure=5; genres: {', '.join(GENRE_VOCABULARY)}")
    by_name = {g.casefold(): g for g in GENRE_VOCABULARY}
    unknown = [name for name in prefs if str(name).strip().casefold() not in by_name]
    if unknown:
        raise RecsysError(f"unknown genre(s) {', '.join(map(repr, unknown))}; valid genres: {', '.join(GENRE_VOCABULARY)}")
    row = np.array(no_history_raw, dtype=np.float64, copy=True)
    low, high = rating_range
    for name, value in prefs.items():
        rating = float(value)
        if not (np.isfinite(rating) and low <= rating <= high):
            raise RecsysError(f"genre {name}: rating {value!r} is outside the rating range {low:g}..{high:g}")
        row[list(user_columns).index(f"avg_{by_name[str(name).strip().casefold()]}")] = rating
    return row


# ---- the model ----------------------------------------------------------------------------


class ContentModel(ContentTables, SupportRanking, ParameterTotal):
    """Two-tower content-based recommender (see the module docstring).

    `ContentModel.fit(TrainingData(train, movies, scale, features), params)` trains; afterwards
    `history` holds the per-epoch loss/val_loss, `catalogue` the recommendable movies.
    """

    predicts_ratings: ClassVar[bool] = True
    kind: ClassVar[str] = "content"
    params: ContentParams

    def __init__(self, params: ContentParams) -> None:
        self.params = params
        self.history: dict[str, list[float]] = {}
        self.best_epoch: int | None = None

    # -- training -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        data: TrainingData,
        params: ContentParams,
        *,
        task: WorkerTask | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: int = 0,
    ) -> ContentModel:
        """Train on `data.ratings` with the features stage's tables and scalers (`data.features`); with
        `content.distribute: multi_worker`, as worker `task` of its cluster (the stage reads it from TF_CONFIG)."""
        if (params.distribute == MULTI_WORKER) != (task is not None):
            raise ConfigError(
                f"content.distribute is {params.distribute} but {'no' if task is None else 'a'} worker task was given "
                "(the train_content stage reads it from TF_CONFIG)"
            )
        if data.features is None:
            raise ModelError("content model: needs the features stage's tables and scalers (data/features/); run the features stage")
        model = cls(params)
        model._train(data, data.features, task, callbacks, verbose)
        return model

    def _train(
        self,
        data: TrainingData,
        features: Features,
        task: WorkerTask | None,
        callbacks: Sequence[keras.callbacks.Callback],
        verbose: int,
    ) -> None:
        p, train = self.params, data.ratings
        self._set_data(train, features, data.movies, data.scale.bounds)
        user_rows = index_of(train[USER].to_numpy(np.int64), self.user_ids)
        movie_rows = self.catalogue.index(train[MOVIE].to_numpy(np.int64))
        for name, rows, ids in ((USER, user_rows, train[USER]), (MOVIE, movie_rows, train[MOVIE])):
            if (rows < 0).any():
                raise data_error(
                    data.source, "have no row in the features tables", column=name, count=int((rows < 0).sum()), examples=ids[rows < 0]
                )
        targets = self.scalers.target.transform(train[[RATING]].to_numpy(np.float64))[:, 0]

        strategy = multi_worker_strategy(task, p.collective_timeout) if task else None
        seed_everything(p.seed)
        with strategy.scope() if strategy else contextlib.nullcontext():
            network = build_network(self.user_inputs.shape[1], self.movie_inputs.shape[1], p)
            # Keras 3.15's multi-step loop cannot read a distributed iterator (has_next fails): 1 step per call
            trainer = build_trainer(network, p.learning_rate, 1) if strategy else build_trainer(network, p.learning_rate)
        self._set_network(network)
        fit_rows, val_rows = validation_split(len(targets), p.validation_fraction, p.seed)

        def local(rows: np.ndarray, seed: int | None, shard: tuple[int, int] | None = None) -> tf.data.Dataset:
            return rating_batches(
                user_rows[rows], movie_rows[rows], targets[rows], self.user_inputs, self.movie_inputs, p.batch_size, seed, shard
            )

        def batches(rows: np.ndarray, seed: int | None) -> tf.data.Dataset:
            if strategy is None:
                return local(rows, seed)
            # each worker builds its own part of every global batch of batch_size ratings
            return strategy.distribute_datasets_from_function(
                lambda context: local(rows, seed, (context.input_pipeline_id, context.num_input_pipelines))
            )

        if strategy is not None:
            adapt_for_multi_worker(trainer, local(fit_rows, p.seed).element_spec, strategy)

        all_callbacks = list(callbacks)
        if p.patience is not None:
            early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=p.patience, restore_best_weights=True)
            all_callbacks.insert(0, early)
        try:
            result = trainer.fit(
                batches(fit_rows, p.seed),
                validation_data=batches(val_rows, None) if len(val_rows) else None,
                epochs=p.epochs,
                callbacks=all_callbacks,
                shuffle=False,  # the dataset shuffles itself, seeded
                verbose=verbose,
            )
        except worker_failures() as exc:
            if task is None:
                raise
            raise worker_failure(exc, task) from exc
        self.history = {key: [float(v) for v in values] for key, values in result.history.items()}
        self.best_epoch = int(early.best_epoch) if p.patience is not None else len(self.history["loss"]) - 1

    def _set_data(self, train: pd.DataFrame, features: Features, movies: pd.DataFrame, rating_range: tuple[float, float]) -> None:
        self._set_tables(train, features, movies, rating_range)
        self._standardise_tables()

    # -- embeddings -----------------------------------------------------------------------

    def parameter_counts(self) -> dict[str, int]:
        return self.tower_parameter_counts()

    def parameters(self) -> ParameterCounts:
        """Only the two towers' weights, shared by every user and movie: none per user or movie."""
        towers = self.parameter_counts()
        parts = f"user tower {towers['user_tower_params']:,} + movie tower {towers['movie_tower_params']:,}"
        return ParameterCounts(per_user=0, per_movie=0, shared=sum(towers.values()), parts=parts)

    def embedded_movies(self) -> tuple[np.ndarray, np.ndarray]:
        """(the catalogue's movie ids, their v_m)."""
        return self.catalogue.movie_ids, self.movie_embeddings()

    def user_embeddings(self, table: pd.DataFrame, file: str = "user features") -> np.ndarray:
        """v_u for each row of a user features table (columns as in training)."""
        raw = feature_matrix(table, self.user_columns, file)
        return self._embed(USER_TOWER, standardise(raw, self.scalers.user, self.user_columns))

    def movie_embeddings(self, table: pd.DataFrame | None = None, file: str = "movie features") -> np.ndarray:
        """v_m for each row of a movie features table; None = the catalogue (the saved vectors)."""
        if table is not None:
            raw = feature_matrix(table, self.movie_columns, file)
            return self._embed(MOVIE_TOWER, standardise(raw, self.scalers.movie, self.movie_columns))
        return self.tower_vectors().movies

    def _compute_vectors(self) -> TowerVectors:
        return TowerVectors(
            users=self._embed(USER_TOWER, self.user_inputs),
            no_history=self._embed(USER_TOWER, self.no_history_input)[0],
            movies=self._embed(MOVIE_TOWER, self.movie_inputs),
            unknown_movie=np.zeros(0, np.float32),  # a movie outside the catalogue gets the training mean instead
        )

    def _to_stars(self, dots: np.ndarray) -> np.ndarray:
        stars = self.scalers.target.inverse_transform(np.asarray(dots, np.float64).reshape(-1, 1)).reshape(np.shape(dots))
        return np.clip(stars, *self.rating_range)

    # -- model contract -------------------------------------------------------------------

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """Ratings in stars for DataFrame[user_id, movie_id]; unknown movies get the training mean."""
        user_ids, movie_ids = check_pairs(pairs)
        out = np.full(len(user_ids), np.clip(self.scalers.global_mean, *self.rating_range), dtype=np.float64)
        movie_rows = self.catalogue.index(movie_ids)
        known = np.flatnonzero(movie_rows >= 0)
        if len(known) == 0:
            return out
        users = self.known_user_vectors(user_ids[known])
        movies = self.movie_embeddings()
        dots = np.concatenate(
            [np.einsum("ij,ij->i", users[i : i + CHUNK], movies[movie_rows[known[i : i + CHUNK]]]) for i in range(0, len(known), CHUNK)]
        )
        out[known] = self._to_stars(dots)
        return out

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        """Predicted stars (len(user_ids) x catalogue): towers run once per user and once per movie."""
        return self.rank_scores(self._to_stars(self.known_user_vectors(user_ids) @ self.movie_embeddings().T))

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """top_list() as a DataFrame[movie_id, title, score]."""
        return self.top_list(user_id, n, exclude_seen).frame()

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList:
        """The n best-predicted catalogue movies for a training user, unseen ones only by default."""
        if index_of(np.array([user_id], np.int64), self.user_ids)[0] < 0:
            raise RecsysError(f"user {user_id} has no training ratings; use recommend_for_genres for a new user")
        scores = self.score_block(np.array([user_id], np.int64))[0]
        return rank_catalogue(self.catalogue, scores, n, seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen))

    def genre_user_row(self, prefs: Mapping[str, float]) -> np.ndarray:
        """Raw user features of a new user from stated genre ratings, e.g. {"Adventure": 5} (`genre_feature_row`)."""
        return genre_feature_row(prefs, self.no_history_raw, self.user_columns, self.rating_range)

    def recommend_for_genres(self, prefs: Mapping[str, float], n: int = 10) -> pd.DataFrame:
        """Cold start: the n best movies for a new user described only by genre ratings."""
        row = pd.DataFrame(self.genre_user_row(prefs)[None, :], columns=self.user_columns)
        scores = self.rank_scores(self._to_stars(self.user_embeddings(row) @ self.movie_embeddings().T))[0]
        return recommendation_frame(self.catalogue, scores, n, None)

    def similar(self, movie_id: int, n: int = 10) -> pd.DataFrame:
        """The n catalogue movies nearest to `movie_id` by squared distance between embeddings."""
        position = self.catalogue.index(np.array([movie_id], np.int64))[0]
        if position < 0:
            raise RecsysError(f"movie {movie_id} is not in the catalogue")
        embeddings = self.movie_embeddings().astype(np.float64)
        distance = np.sum((embeddings - embeddings[position]) ** 2, axis=1)
        itself = np.zeros(len(distance), dtype=bool)
        itself[position] = True
        picks = top_n(-distance, n, itself)
        picks = picks[picks >= 0]
        return pd.DataFrame({MOVIE: self.catalogue.movie_ids[picks], TITLE: self.catalogue.titles[picks], "distance": distance[picks]})

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """content.keras (the network), content.npz (tables, catalogue, seen items), content.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vectors = self._save_network(directory, KERAS_FILE)
        save_arrays(directory, ARRAYS_FILE, {**self._table_arrays(), **vectors})
        state = {
            "params": self.params.model_dump(),
            **self._table_state(),
            "history": self.history,
            "best_epoch": self.best_epoch,
        }
        write_json(directory / STATE_FILE, state)

    @classmethod
    def load(cls, directory: str | Path) -> ContentModel:
        directory = Path(directory)
        network_file = model_file(directory, KERAS_FILE)
        state = read_model_meta(directory, STATE_FILE)
        arrays = load_arrays(directory, ARRAYS_FILE)
        model = cls(ContentParams.model_validate(state["params"]))
        model._restore_network(network_file, arrays, state)
        model._restore_tables(arrays, state, directory / STATE_FILE)
        model.history = {k: list(v) for k, v in state["history"].items()}
        model.best_epoch = state["best_epoch"]
        model._standardise_tables()
        return model
