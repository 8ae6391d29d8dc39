"""Content-based ranking model: the content model's two towers trained for top-N lists.

The towers are content.py's (`build_tower`: relu layers, a linear output, L2 normalisation), but
instead of regressing ratings they learn which movies a user picks. Training rows are the positive
interactions (training ratings >= `positive_threshold`; 0 = every rating). For a batch of B rows
(user u_i, movie m_i) the loss is a softmax over the batch's movies (in-batch negatives):

    logits[i, j] = v_u_i . v_m_j / temperature - log q(m_j),   loss = mean_i CE(logits[i], i)

q(m) is the movie's share of the positives, the chance that a batch slot holds it. In-batch
negatives are drawn by popularity; without the correction the model learns to demote popular
movies (validation nDCG@10 0.014 instead of 0.17). A column j != i holding row i's movie again is
masked out (it would be a false negative). Scores are v_u . v_m / temperature +
`popularity_prior` * log q(m): the prior restores some of the popularity a softmax over few
negatives under-learns. `predicts_ratings` is False: `predict` returns these scores, not stars.

Inputs. Movie tower: the features stage's movie features (year, training mean and count, genre
flags; standardised with its scalers) and a learned movie-id embedding. User tower: the features
stage's user features (rating count, mean, mean per genre) and, with `history`, a bag of the user's
rated training movies through the same id embedding (their sum / sqrt(their number)). While
training, a row's own movie and a `history_dropout` share of the others are left out of its bag,
as a user's test movies are absent from their history.

New movies and users (fallbacks):
- a movie without training ratings has count 0 and mean = the training mean (features stage),
  year = the catalogue's median year when missing (features stage), and the id embedding's
  reserved row 0, "unknown movie"; `id_dropout` trains the tower on that row for a share of the
  batch's movies, so genres and year alone place such a movie. Movies rated but never positive
  also use row 0 (the movie tower never saw their own row).
- a user outside train has the no-history user features and an empty bag (`blank_history`
  trains the tower on empty bags).
- a new user described by genre ratings (`recommend_for_genres`) is a typical-activity user whose
  rated movies are the liked genres' movies (`genre_user_inputs`).
- a movie outside the catalogue (`predict` only) is scored as a movie with no genres, the
  training mean, count 0, the scaler's mean year and the unknown-movie id.

Feeding: tf.data slices a seeded permutation of the positives per epoch and gathers, per batch,
the distinct users' and movies' feature rows and the distinct users' bags (`history_table`);
memory stays O(ratings + users + movies), never a per-rating feature matrix.

Measured on a validation slice of the ml-latest-small train split (a random 20% of it, seed 7;
models fitted on the other 80%; never the test split) by `benchmarks/bench_ranking_models.py --tune
--models content_ranking`, nDCG@10 (popularity 0.1176): the defaults 0.1961; logQ correction off
0.0474 (in-batch negatives are drawn by popularity, so without it the model learns to demote popular
movies); no id embedding and no history bag (features only) 0.1745; no history bag 0.1605;
temperature 0.05 0.1882; popularity_prior 0 0.1890 (coverage 0.0992 instead of 0.0595); 8 epochs
0.1899 (those at the earlier default of 10 epochs). The epochs, in a later version: 10 gave 0.1943
and 0.1879 (seeds 1 and 2), 6 (the default since) 0.1929 and 0.1845 in 45-48% of the fit time,
7 0.1858, 5 0.1902, 4 0.1821, and 6 at learning_rate 0.01 0.1807 (seed 1): about 1% of nDCG@10 for
a shorter default `dvc repro` (benchmarks/README.md, "Fewer content epochs by default").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
else:
    from pipeline.deferred import keras, tf

from pipeline.config import ContentRankingParams
from pipeline.data.schema import GENRE_VOCABULARY, MOVIE, RATING, USER, YEAR
from pipeline.errors import DataError, ModelError, RecsysError, data_error
from pipeline.features import AVG_RATING, N_RATINGS, Features
from pipeline.models.base import (
    ParameterCounts,
    ParameterTotal,
    SeenItems,
    TopList,
    TrainingData,
    check_pairs,
    concatenated_ranges,
    index_of,
    load_arrays,
    rank_catalogue,
    read_model_meta,
    recommendation_frame,
    save_arrays,
    seen_exclusion,
)
from pipeline.models.content import build_tower, genre_feature_row
from pipeline.models.content_input import gathered_batches, row_batches, standardise
from pipeline.models.content_tables import MOVIE_TOWER, USER_TOWER, ContentTables, TowerVectors
from pipeline.models.ranking import SupportRanking
from pipeline.seeding import seed_everything

KERAS_FILE = "content_ranking.keras"
ARRAYS_FILE = "content_ranking.npz"
STATE_FILE = "content_ranking.json"
ID_EMBEDDING = "movie_id_embedding"
UNKNOWN_MOVIE = 0  # id-embedding row of movies without training ratings; catalogue position p uses row p + 1
PRIOR_FLOOR = 0.5  # positives counted for a movie with none in the popularity prior (keeps log finite)


# ---- loss -----------------------------------------------------------------------------------


def in_batch_softmax_loss(
    user_vectors: tf.Tensor,
    movie_vectors: tf.Tensor,
    movie_ids: tf.Tensor,
    log_q: tf.Tensor,
    temperature: float,
) -> tf.Tensor:
    """Per-row loss of a softmax over the batch's movies: row i's positive is column i.

    logits[i, j] = user_vectors[i] . movie_vectors[j] / temperature - log_q[j]; columns j != i
    with movie_ids[j] == movie_ids[i] are masked (-inf): a second copy of row i's movie is no
    negative for row i. Returns logsumexp(logits[i]) - logits[i, i].
    Pass log_q = 0 for no popularity correction.
    """
    user_vectors = tf.convert_to_tensor(user_vectors)
    movie_vectors = tf.convert_to_tensor(movie_vectors, user_vectors.dtype)
    movie_ids = tf.convert_to_tensor(movie_ids)
    log_q = tf.convert_to_tensor(log_q, user_vectors.dtype)
    logits = tf.matmul(user_vectors, movie_vectors, transpose_b=True) / temperature - log_q[None, :]
    duplicate = tf.equal(movie_ids[:, None], movie_ids[None, :]) & ~tf.eye(tf.shape(logits)[0], dtype=tf.bool)
    logits = tf.where(duplicate, tf.constant(-np.inf, logits.dtype), logits)
    return tf.reduce_logsumexp(logits, axis=1) - tf.linalg.diag_part(logits)


def log_popularity(movie_positions: np.ndarray, n_movies: int) -> np.ndarray:
    """log q(m): the log share of the positives held by each catalogue movie (-inf where none)."""
    counts = np.bincount(movie_positions, minlength=n_movies).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum()).astype(np.float32)


def history_table(seen: SeenItems, length: int, seed: int) -> np.ndarray:
    """(users x length) catalogue positions of each user's rated movies, -1 padded, rows as seen.user_ids.

    A user with more than `length` rated movies keeps a seeded random `length` of them (the
    training bag; serving averages all of them).
    """
    counts = np.diff(seen.indptr)
    owner = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((np.random.default_rng(seed).random(len(owner)), owner))
    rank = np.arange(len(owner)) - seen.indptr[owner]
    keep = rank < length
    table = np.full((len(counts), length), -1, dtype=np.int32)
    table[owner[keep], rank[keep]] = seen.indices[order][keep]
    return table


# ---- network --------------------------------------------------------------------------------


def build_network(n_user_inputs: int, n_movie_inputs: int, n_movies: int, params: ContentRankingParams) -> keras.Model:
    """(user features [, history bag], movie features [, movie id row]) -> v_u . v_m (saved as .keras).

    Both towers come from content.py's `build_tower`; the id embedding has n_movies + 1 rows
    (row 0: the unknown movie) and also feeds the user's history bag.
    """
    id_dim = params.id_dim
    history_dim = id_dim if params.history else 0
    user_tower = build_tower(USER_TOWER, n_user_inputs + history_dim, params.user_layers, params.embedding_dim)
    movie_tower = build_tower(MOVIE_TOWER, n_movie_inputs + id_dim, params.item_layers, params.embedding_dim)
    user_in = keras.Input((n_user_inputs,), name="user_features")
    movie_in = keras.Input((n_movie_inputs,), name="movie_features")
    inputs, user_x, movie_x = [user_in], user_in, movie_in
    if history_dim:
        bag = keras.Input((history_dim,), name="history_bag")
        inputs.append(bag)
        user_x = keras.layers.Concatenate(name="user_inputs")([user_in, bag])
    inputs.append(movie_in)
    if id_dim:
        movie_row = keras.Input((), dtype="int32", name="movie_id_row")
        inputs.append(movie_row)
        embedded = keras.layers.Embedding(n_movies + 1, id_dim, name=ID_EMBEDDING)(movie_row)
        movie_x = keras.layers.Concatenate(name="movie_inputs")([movie_in, embedded])
    dot = keras.layers.Dot(axes=1, name="dot")([user_tower(user_x), movie_tower(movie_x)])
    return keras.Model(inputs, dot, name="two_tower_ranking")


# ---- input pipeline ---------------------------------------------------------------------------


def positive_batches(
    user_rows: np.ndarray,
    movie_positions: np.ndarray,
    user_table: np.ndarray,
    movie_table: np.ndarray,
    history: np.ndarray,
    log_q: np.ndarray,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Batches of positives, a new seeded permutation each epoch (the same sequence per seed).

    Each element is a dict: distinct users' features `users`, their `history` rows (see
    `history_table`, rows follow `user_table`'s) and each row's `user_index` among them; distinct
    movies' features `movies`, their catalogue positions `movie_positions` and each row's
    `movie_index`; per row its movie's catalogue position `targets` and `log_q`.
    """
    users = tf.constant(user_rows, tf.int32)
    movies = tf.constant(movie_positions, tf.int32)
    user_features = tf.constant(user_table, tf.float32)
    movie_features = tf.constant(movie_table, tf.float32)
    log_q_table = tf.constant(log_q, tf.float32)
    rated = tf.constant(history, tf.int32)

    def gather(rows: tf.Tensor) -> dict[str, tf.Tensor]:
        distinct_users, user_index = tf.unique(tf.gather(users, rows))
        targets = tf.gather(movies, rows)
        distinct_movies, movie_index = tf.unique(targets)
        return {
            "users": tf.gather(user_features, distinct_users),
            "history": tf.gather(rated, distinct_users),
            "user_index": user_index,
            "movies": tf.gather(movie_features, distinct_movies),
            "movie_positions": distinct_movies,
            "movie_index": movie_index,
            "targets": targets,
            "log_q": tf.gather(log_q_table, targets),
        }

    return gathered_batches(row_batches(len(user_rows), batch_size, seed), gather)


class Trainer:
    """Adam steps on `positive_batches` (one compiled step for every batch shape), sharing `network`'s layers."""

    def __init__(self, network: keras.Model, params: ContentRankingParams, element_spec: dict) -> None:
        self.params = params
        self.user_tower = network.get_layer(USER_TOWER)
        self.movie_tower = network.get_layer(MOVIE_TOWER)
        self.embedding = network.get_layer(ID_EMBEDDING) if params.id_dim else None
        self.variables = network.trainable_variables
        self.optimizer = keras.optimizers.Adam(learning_rate=params.learning_rate)
        self.optimizer.build(self.variables)
        self.dropout = tf.random.Generator.from_seed(params.seed)
        self.step = tf.function(self._step, input_signature=[element_spec])

    def _user_inputs(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        features = tf.gather(batch["users"], batch["user_index"])
        if not self.params.history:
            return features
        assert self.embedding is not None, "history needs id_dim > 0 (ContentRankingParams checks it)"
        history = batch["history"]  # distinct users x history_length, -1 = padding
        history = tf.where(self.dropout.uniform(tf.shape(history)) >= self.params.history_dropout, history, -1)
        cells = tf.where(history >= 0)
        table = self.embedding.embeddings
        # a sparse (distinct users x id rows) product: its gradient is one dense id-table update
        rated = tf.SparseTensor(
            tf.stack([cells[:, 0], tf.cast(tf.gather_nd(history, cells), tf.int64) + 1], axis=1),
            tf.ones(tf.shape(cells)[:1]),
            tf.stack([tf.shape(history, tf.int64)[0], tf.shape(table, tf.int64)[0]]),
        )
        sums = tf.sparse.sparse_dense_matmul(rated, table)
        # leave the row's own movie out of its bag: a test movie is never in the history
        rows, targets = tf.gather(history, batch["user_index"]), batch["targets"]
        own = tf.cast(tf.reduce_any(tf.equal(rows, targets[:, None]), axis=1), tf.float32)
        bag_sum = tf.gather(sums, batch["user_index"]) - own[:, None] * self.embedding(targets + 1)
        others = tf.gather(tf.reduce_sum(tf.cast(history >= 0, tf.float32), axis=1), batch["user_index"]) - own
        keep = tf.cast(self.dropout.uniform(tf.shape(others)) >= self.params.blank_history, tf.float32)
        return tf.concat([features, bag_sum * (keep / tf.sqrt(tf.maximum(others, 1.0)))[:, None]], axis=1)

    def _movie_inputs(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        if not self.params.id_dim:
            return batch["movies"]
        assert self.embedding is not None, "the id embedding exists whenever id_dim > 0"
        positions = batch["movie_positions"]
        dropped = self.dropout.uniform(tf.shape(positions)) < self.params.id_dropout
        rows = tf.where(dropped, tf.zeros_like(positions) + UNKNOWN_MOVIE, positions + 1)
        return tf.concat([batch["movies"], self.embedding(rows)], axis=1)

    def _step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.GradientTape() as tape:
            users = self.user_tower(self._user_inputs(batch), training=True)
            movies = tf.gather(self.movie_tower(self._movie_inputs(batch), training=True), batch["movie_index"])
            log_q = batch["log_q"] if self.params.logq_correction else tf.zeros_like(batch["log_q"])
            loss = tf.reduce_mean(in_batch_softmax_loss(users, movies, batch["targets"], log_q, self.params.temperature))
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables, strict=True))
        return loss

    def epoch(self, dataset: tf.data.Dataset) -> float:
        """One pass over `dataset`; the mean loss of its steps."""
        losses = [self.step(batch) for batch in dataset]  # no per-step sync with Python
        return float(tf.reduce_mean(tf.stack(losses)))


# ---- the model --------------------------------------------------------------------------------


class ContentRankingModel(ContentTables, SupportRanking, ParameterTotal):
    """Two-tower content model trained with an in-batch softmax (see the module docstring).

    `ContentRankingModel.fit(TrainingData(train, movies, scale, features), params)` trains; `history`
    holds the mean training loss per epoch. Scores rank movies; they are not ratings.
    """

    predicts_ratings: ClassVar[bool] = False
    kind: ClassVar[str] = "content ranking"
    params: ContentRankingParams

    def __init__(self, params: ContentRankingParams) -> None:
        self.params = params
        self.history: dict[str, list[float]] = {}

    # -- training -------------------------------------------------------------------------

    @classmethod
    def fit(cls, data: TrainingData, params: ContentRankingParams, *, verbose: int = 0) -> ContentRankingModel:
        """Train on the positives of `data.ratings` with the features stage's tables and scalers (`data.features`)."""
        if data.features is None:
            raise ModelError(
                "content ranking model: needs the features stage's tables and scalers (data/features/); run the features stage"
            )
        model = cls(params)
        model._train(data.ratings, data.features, data.movies, data.scale.bounds, verbose)
        return model

    def parameters(self) -> ParameterCounts:
        """The towers' weights and the id embedding's unknown-movie row are shared; the id embedding
        has a row per catalogue movie (also read by the users' history bags); nothing per user."""
        towers = self.tower_parameter_counts()
        id_dim = self.params.id_dim
        parts = f"user tower {towers['user_tower_params']:,} + movie tower {towers['movie_tower_params']:,}"
        if id_dim:
            parts += f" + unknown-movie row {id_dim}; movie-id embedding: {len(self.catalogue):,} movies x {id_dim}"
        return ParameterCounts(per_user=0, per_movie=len(self.catalogue) * id_dim, shared=sum(towers.values()) + id_dim, parts=parts)

    def embedded_movies(self) -> tuple[np.ndarray, np.ndarray]:
        """(the catalogue's movie ids, their v_m)."""
        return self.catalogue.movie_ids, self.tower_vectors().movies

    def _train(
        self, train: pd.DataFrame, features: Features, movies: pd.DataFrame, rating_range: tuple[float, float], verbose: int
    ) -> None:
        p = self.params
        self._set_data(train, features, movies, rating_range)
        positive = train[RATING].to_numpy(np.float64) >= p.positive_threshold
        if not positive.any():
            raise data_error(
                "train",
                f"reach content_ranking.positive_threshold {p.positive_threshold:g} (highest training rating "
                f"{train[RATING].max():g}); the ranking model needs at least one positive interaction",
                column=RATING,
                count=0,
            )
        user_rows = index_of(train[USER].to_numpy(np.int64)[positive], self.user_ids)
        movie_positions = self.catalogue.index(train[MOVIE].to_numpy(np.int64)[positive])
        if (user_rows < 0).any():
            bad = train[USER].to_numpy()[positive][user_rows < 0]
            raise data_error("train", "have no row in the features tables", column=USER, count=len(bad), examples=bad)
        seed_everything(p.seed)
        self.positives = np.bincount(movie_positions, minlength=len(self.catalogue)).astype(np.int64)
        bags = history_table(self.seen, p.history_length if p.history else 0, p.seed)
        log_q = log_popularity(movie_positions, len(self.catalogue))
        dataset = positive_batches(user_rows, movie_positions, self.user_inputs, self.movie_inputs, bags, log_q, p.batch_size, p.seed)
        network = build_network(self.user_inputs.shape[1], self.movie_inputs.shape[1], len(self.catalogue), p)
        trainer = Trainer(network, p, dataset.element_spec)
        losses = []
        for epoch in range(p.epochs):
            losses.append(float(trainer.epoch(dataset)))
            if verbose:
                print(f"epoch {epoch + 1}/{p.epochs}: loss {losses[-1]:.4f}")
        self._set_network(network)
        self.history = {"loss": losses}

    def _set_data(self, train: pd.DataFrame, features: Features, movies: pd.DataFrame, rating_range: tuple[float, float]) -> None:
        self._set_tables(train, features, movies, rating_range)
        if not np.array_equal(self.seen.user_ids, self.user_ids):
            raise DataError(
                "features users: column 'user_id': the users features do not cover exactly the training users; rerun the features stage"
            )
        self.unknown_movie_raw = self._unknown_movie_row()
        self.typical_history = float(np.median(np.diff(self.seen.indptr)))
        self._standardise_tables()

    def _unknown_movie_row(self) -> np.ndarray:
        """Raw features of a movie outside the catalogue: no genres, training mean, count 0, mean year."""
        row = np.zeros(len(self.movie_columns))
        values = {YEAR: self.scalers.movie.mean_[self.movie_columns.index(YEAR)], AVG_RATING: self.scalers.global_mean, N_RATINGS: 0.0}
        for column, value in values.items():
            row[self.movie_columns.index(column)] = value
        return row

    def _standardise_tables(self) -> None:
        super()._standardise_tables()
        self.unknown_movie_input = standardise(self.unknown_movie_raw[None, :], self.scalers.movie, self.movie_columns)

    # -- embeddings -----------------------------------------------------------------------

    def _id_table(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.network.get_layer(ID_EMBEDDING).embeddings).astype(np.float32)

    def _movie_tower_inputs(self, features: np.ndarray, id_rows: np.ndarray) -> np.ndarray:
        if not self.params.id_dim:
            return features
        return np.concatenate([features, self._id_table()[id_rows]], axis=1)

    def _compute_vectors(self) -> TowerVectors:
        """Only movies the movie tower was trained on as positives use their own id row; the others
        (no training rating, or none reaching the threshold) use the unknown-movie row."""
        id_rows = np.where(self.positives > 0, np.arange(len(self.positives)) + 1, UNKNOWN_MOVIE)
        n_users = len(self.user_ids)
        users = self._embed(
            USER_TOWER,
            self._user_tower_inputs(np.concatenate([self.user_inputs, self.no_history_input]), np.append(np.arange(n_users), -1)),
        )
        unknown = self._movie_tower_inputs(self.unknown_movie_input, np.array([UNKNOWN_MOVIE]))
        return TowerVectors(
            users=users[:n_users],
            no_history=users[n_users],
            movies=self._embed(MOVIE_TOWER, self._movie_tower_inputs(self.movie_inputs, id_rows)),
            unknown_movie=self._embed(MOVIE_TOWER, unknown)[0],
        )

    def _history_bags(self, rows: np.ndarray) -> np.ndarray:
        """The bags of the users at `rows` of user_ids (-1: none, zeros): the sum of the id embeddings
        of their rated movies / sqrt(their number), as in training but over every rated movie."""
        safe = np.maximum(rows, 0)
        starts = self.seen.indptr[safe]
        lengths = np.where(rows >= 0, self.seen.indptr[safe + 1] - starts, 0)
        owners = np.repeat(np.arange(len(rows)), lengths)
        movies = self.seen.indices[concatenated_ranges(starts, lengths)]
        weights = np.repeat(1.0 / np.sqrt(np.maximum(lengths, 1)), lengths)
        pooling = sparse.csr_matrix((weights, (owners, movies)), shape=(len(rows), len(self.catalogue)))
        return np.asarray(pooling @ self._id_table()[1:], dtype=np.float32)

    def _user_tower_inputs(self, features: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if not self.params.history:
            return features
        return np.concatenate([features, self._history_bags(rows)], axis=1)

    # -- scores -------------------------------------------------------------------------------

    def popularity_prior(self) -> np.ndarray:
        """popularity_prior * log q(m) per catalogue movie, q from the positives (PRIOR_FLOOR for none)."""
        counts = np.maximum(self.positives, PRIOR_FLOOR)
        return self.params.popularity_prior * np.log(counts / self.positives.sum())

    def _scores(self, users: np.ndarray) -> np.ndarray:
        """(users x catalogue) scores from user vectors: v_u . v_m / temperature + the popularity prior."""
        return (users @ self.tower_vectors().movies.T).astype(np.float64) / self.params.temperature + self.popularity_prior()

    # -- model contract -------------------------------------------------------------------

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """Ranking scores (score_block's) for DataFrame[user_id, movie_id]; not stars.

        Unknown users are the no-history user; a movie outside the catalogue is the featureless
        movie of the module docstring with the prior of a movie without positives.
        """
        user_ids, movie_ids = check_pairs(pairs)
        if len(user_ids) == 0:
            return np.zeros(0, np.float64)
        positions = self.catalogue.index(movie_ids)
        movies = np.concatenate([self.tower_vectors().movies, self.tower_vectors().unknown_movie[None, :]])[
            np.where(positions >= 0, positions, len(self.catalogue))
        ]
        floor = self.params.popularity_prior * np.log(PRIOR_FLOOR / self.positives.sum())
        prior = np.append(self.popularity_prior(), floor)[np.where(positions >= 0, positions, len(self.catalogue))]
        dots = np.einsum("ij,ij->i", self.known_user_vectors(user_ids), movies).astype(np.float64)
        return dots / self.params.temperature + prior

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        """Scores (len(user_ids) x catalogue): towers run once per user and once per movie."""
        return self.rank_scores(self._scores(self.known_user_vectors(user_ids)))

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """top_list() as a DataFrame[movie_id, title, score]."""
        return self.top_list(user_id, n, exclude_seen).frame()

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList:
        """The n best-scored catalogue movies for a training user, unseen ones only by default."""
        if index_of(np.array([user_id], np.int64), self.user_ids)[0] < 0:
            raise RecsysError(f"user {user_id} has no training ratings; use recommend_for_genres for a new user")
        scores = self.score_block(np.array([user_id], np.int64))[0]
        return rank_catalogue(self.catalogue, scores, n, seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen))

    def genre_user_row(self, prefs: Mapping[str, float]) -> np.ndarray:
        """Raw user features of a new user from stated genre ratings (content.genre_feature_row)."""
        return genre_feature_row(prefs, self.no_history_raw, self.user_columns, self.rating_range)

    def taste_shelf(self, prefs: Mapping[str, float]) -> np.ndarray:
        """Catalogue mask of the movies that follow stated genre ratings: a liked genre (any genre
        when none is liked) and no disliked genre. Liked genres are those rated above the training
        mean, disliked ones below it; unstated genres are neither.
        """
        row = self.genre_user_row(prefs)  # unstated genres keep the training mean
        stated = row[[self.user_columns.index(f"avg_{g}") for g in GENRE_VOCABULARY]]
        flags = self.movie_raw[:, [self.movie_columns.index(f"is_{g}") for g in GENRE_VOCABULARY]] > 0
        mean = self.no_history_raw[self.user_columns.index(AVG_RATING)]
        liked, disliked = stated > mean, stated < mean
        wanted = flags[:, liked].any(axis=1) if liked.any() else np.ones(len(flags), bool)
        return np.asarray(wanted & ~flags[:, disliked].any(axis=1), dtype=bool)

    def genre_history(self, prefs: Mapping[str, float]) -> np.ndarray:
        """Catalogue positions of the movies a new user with these genre ratings is taken to have
        rated: the `taste_shelf` movies trained on as positives."""
        return np.flatnonzero(self.taste_shelf(prefs) & (self.positives > 0))

    def genre_user_inputs(self, prefs: Mapping[str, float]) -> np.ndarray:
        """The user tower's input row for a new user described by genre ratings, e.g. {"Horror": 5}.

        Features: `genre_user_row` (the no-history user with each stated genre's average set). With
        `history`, the user is taken as a training user of typical activity (`typical_history`, the
        median number of training ratings per user) whose rated movies are drawn from
        `genre_history` in proportion to sqrt(their positives): n_ratings is that number and the bag
        the mean id embedding of those movies under these weights, times sqrt(that number), as a bag
        of that many movies would be. Measured by these scores alone on ten genre profiles (bench_ranking_models.py
        --genres): profiles with at least 8 of 10 listed movies in a liked genre, 6 with equal
        weights, 8 with sqrt weights, 3 with weights proportional to the positives. The features
        alone with an empty bag list the most popular movies whatever the tastes.
        """
        raw = self.genre_user_row(prefs)
        if not self.params.history:
            return standardise(raw[None, :], self.scalers.user, self.user_columns)
        raw[self.user_columns.index(N_RATINGS)] = self.typical_history
        movies = self.genre_history(prefs)
        bag = np.zeros((1, self.params.id_dim), np.float32)
        if len(movies):
            weights = np.sqrt(self.positives[movies].astype(np.float64))
            bag[0] = (weights / weights.sum()) @ self._id_table()[movies + 1] * np.sqrt(self.typical_history)
        return np.concatenate([standardise(raw[None, :], self.scalers.user, self.user_columns), bag], axis=1)

    def genre_scores(self, prefs: Mapping[str, float]) -> np.ndarray:
        """Scores over the catalogue for a new user described only by genre ratings."""
        return self._scores(self._embed(USER_TOWER, self.genre_user_inputs(prefs)))[0]

    def recommend_for_genres(self, prefs: Mapping[str, float], n: int = 10) -> pd.DataFrame:
        """Cold start: the n best movies for a new user described only by genre ratings.

        The `taste_shelf` movies come first, in the model's order, then the others if the shelf
        has fewer than n: a user who states tastes gets movies that follow them. The scores alone
        drift toward popular movies of other genres for tastes rare among the training users
        (Documentary=5 listed no documentary in 10 on ml-latest-small: bench_ranking_models.py --genres).
        """
        scores, shelf = self.genre_scores(prefs), self.taste_shelf(prefs)
        first = recommendation_frame(self.catalogue, scores, n, ~shelf)
        rest = recommendation_frame(self.catalogue, scores, n - len(first), shelf) if len(first) < n else first.iloc[:0]
        return pd.concat([first, rest], ignore_index=True)

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """content_ranking.keras (network), content_ranking.npz (tables, catalogue, seen), content_ranking.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vectors = self._save_network(directory, KERAS_FILE)
        arrays = {**self._table_arrays(), **vectors, "unknown_movie_features": self.unknown_movie_raw, "positives": self.positives}
        save_arrays(directory, ARRAYS_FILE, arrays)
        state = {
            "kind": "content_ranking",
            "params": self.params.model_dump(),
            **self._table_state(),
            "history": self.history,
            "typical_history": self.typical_history,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> ContentRankingModel:
        directory = Path(directory)
        if not (directory / KERAS_FILE).is_file():
            raise ModelError(f"{directory / KERAS_FILE}: model file not found (train the model first)")
        state = read_model_meta(directory, STATE_FILE)
        arrays = load_arrays(directory, ARRAYS_FILE)
        model = cls(ContentRankingParams.model_validate(state["params"]))
        model._restore_network(directory / KERAS_FILE, arrays, state)
        model._restore_tables(arrays, state, directory / STATE_FILE)
        model.history = {k: list(v) for k, v in state["history"].items()}
        model.typical_history = float(state["typical_history"])
        model.unknown_movie_raw = arrays["unknown_movie_features"]
        model.positives = arrays["positives"].astype(np.int64)
        model._standardise_tables()
        return model
