"""Collaborative filtering: the course's matrix factorization, trained sparsely with Adam.

Movie features X (movies x k), user weights W (users x k), user biases b; ratings are normalised by
each movie's mean over the TRAINING ratings, and a prediction is x_i . w_j + b_j + mean_i (+ c_i,
an optional movie bias). The course's cost (`cost: sum`) is

    J = 1/2 * sum over observed (i, j) of (x_i . w_j + b_j - ynorm_ij)^2 + lambda/2 * (sum W^2 + sum X^2)

Training works on the observed (movie, user) pairs only: time and memory O(ratings x k), never a
dense movies x users matrix. With e the error of each pair and E the sparse movies x users matrix of
them, the gradient of the `sum` cost is

    dJ/dX = E W + lambda X,    dJ/dW = E^T X + lambda W,    dJ/db_j = sum of user j's errors

Two engines take the same Adam steps (Keras's update rule) on it. `engine: numpy` (the default)
writes that gradient out with NumPy and SciPy's sparse products; `engine: tensorflow` derives it with
GradientTape from `sparse_cost`, the course's way. They agree to float rounding (tests), and the
NumPy one spares the stage TensorFlow's import, which takes longer than the fit.
`cofi_cost` is the dense formula, kept for teaching and for tests.

Fallbacks (never an exception in predict): an unknown user has w = 0, b = 0 (the course's way), so
gets the movie's mean; a movie without training ratings gets the global mean.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.config import CofiParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError, RecsysError, data_error
from pipeline.io import write_json
from pipeline.models.base import (
    Catalogue,
    ParameterCounts,
    ParameterTotal,
    SeenItems,
    TopList,
    TrainingData,
    check_pairs,
    index_of,
    load_arrays,
    rank_catalogue,
    read_model_meta,
    save_arrays,
    seen_exclusion,
)
from pipeline.models.ranking import SupportRanking
from pipeline.seeding import seed_everything

FORMAT = "cofi-1"
ARRAYS = "cofi.npz"
META = "cofi.json"
CHUNK = 1 << 20  # full-batch gradients are summed over chunks of at most this many ratings (bounded memory)


def cofi_cost(X: np.ndarray, W: np.ndarray, b: np.ndarray, Y: np.ndarray, R: np.ndarray, lambda_: float) -> float:
    """The course's cost on dense arrays: X (movies x k), W (users x k), b (1 x users), Y and R (movies x users)."""
    errors = (X @ W.T + b - Y) * R
    return float(0.5 * np.sum(errors**2) + lambda_ / 2 * (np.sum(W**2) + np.sum(X**2)))


def sparse_cost(
    X: Any,
    W: Any,
    b: Any,
    movie_idx: Any,
    user_idx: Any,
    y: Any,
    lambda_: float,
    c: Any = None,
    cost: str = "sum",
    share: float = 1.0,
    n_total: int | None = None,
) -> Any:
    """The cost over observed pairs only (TensorFlow; differentiable with GradientTape).

    `y` holds the normalised ratings of the pairs (movie_idx[r], user_idx[r]). With `cost="sum"` it
    equals `cofi_cost` on the dense arrays; `share` scales the penalty for a mini-batch that holds
    that share of the ratings. With `cost="mean"` the sum of squared errors and of each pair's
    penalty is divided by `n_total` (the number of training ratings).
    """
    import tensorflow as tf

    predicted = pair_dot(X, W, movie_idx, user_idx) + tf.gather(b, user_idx)
    if c is not None:
        predicted += tf.gather(c, movie_idx)
    squared = tf.reduce_sum(tf.square(predicted - y))
    if cost == "mean":
        assert n_total is not None, 'cost="mean" divides by n_total, the number of training ratings'
        # each pair's penalty |x_i|^2 + |w_j|^2, summed per row: rows weighted by their pair counts
        # (cheaper than penalising the gathered rows: the gradient stays on the small dense X and W)
        ones = tf.ones_like(y)
        movie_counts = tf.math.unsorted_segment_sum(ones, movie_idx, tf.shape(X)[0])
        user_counts = tf.math.unsorted_segment_sum(ones, user_idx, tf.shape(W)[0])
        penalty = tf.reduce_sum(movie_counts * tf.reduce_sum(tf.square(X), axis=1))
        penalty += tf.reduce_sum(user_counts * tf.reduce_sum(tf.square(W), axis=1))
        if c is not None:
            penalty += tf.reduce_sum(movie_counts * tf.square(c))
        return (squared + lambda_ * penalty) / (2.0 * n_total)
    penalty = tf.reduce_sum(tf.square(W)) + tf.reduce_sum(tf.square(X))
    if c is not None:
        penalty += tf.reduce_sum(tf.square(c))
    return 0.5 * squared + lambda_ / 2.0 * share * penalty


def pair_dot(X: Any, W: Any, movie_idx: Any, user_idx: Any) -> Any:
    """x_i . w_j for each observed pair (i, j), differentiable in X and W.

    The gradients are written out as two sparse-dense products, E @ W and E^T @ X, where E holds the
    upstream gradient of each pair: the same values TensorFlow derives for the gathers, a third
    faster on CPU because no (pairs x k) intermediate is scattered back.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def dot(X: Any, W: Any) -> Any:
        value = tf.reduce_sum(tf.gather(X, movie_idx) * tf.gather(W, user_idx), axis=1)

        def grad(upstream: Any) -> tuple[Any, Any]:
            indices = tf.stack([tf.cast(movie_idx, tf.int64), tf.cast(user_idx, tf.int64)], axis=1)
            shape = tf.stack([tf.shape(X, out_type=tf.int64)[0], tf.shape(W, out_type=tf.int64)[0]])
            errors = tf.SparseTensor(indices, upstream, shape)
            return (
                tf.sparse.sparse_dense_matmul(errors, W),
                tf.sparse.sparse_dense_matmul(errors, X, adjoint_a=True),
            )

        return value, grad

    return dot(tf.convert_to_tensor(X), tf.convert_to_tensor(W))


# ---- data preparation (NumPy) -------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """Training ratings as index arrays, sorted by (movie, user) so that gathers read X in order."""

    user_ids: np.ndarray  # sorted ids of the users with training ratings
    movie_ids: np.ndarray  # sorted ids of the movies with training ratings
    user_idx: np.ndarray  # int32 per rating
    movie_idx: np.ndarray  # int32 per rating
    ratings: np.ndarray  # float64 per rating


def check_train(train: pd.DataFrame, source: str) -> None:
    """A DataError when the training ratings cannot be trained on."""
    missing = [c for c in (USER, MOVIE, RATING) if c not in train.columns]
    if missing:
        raise data_error(source, f"missing column(s) {', '.join(missing)}; expected {USER}, {MOVIE}, {RATING}")
    if len(train) == 0:
        raise DataError(f"{source}: no ratings to train on")
    ratings = pd.to_numeric(train[RATING], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(ratings)
    if bad.any():
        raise data_error(source, "are not finite numbers", column=RATING, count=int(bad.sum()), examples=train[RATING][bad])


def encode(train: pd.DataFrame) -> Encoded:
    user_ids, user_idx = np.unique(train[USER].to_numpy(np.int64), return_inverse=True)
    movie_ids, movie_idx = np.unique(train[MOVIE].to_numpy(np.int64), return_inverse=True)
    order = np.lexsort((user_idx, movie_idx))
    return Encoded(
        user_ids,
        movie_ids,
        user_idx[order].astype(np.int32),
        movie_idx[order].astype(np.int32),
        train[RATING].to_numpy(np.float64)[order],
    )


def encode_against_catalogue(train: pd.DataFrame, movies: pd.DataFrame, source: str) -> tuple[Catalogue, Encoded]:
    """(catalogue, encoded train), or a DataError when train rates movies missing from `movies`."""
    catalogue = Catalogue.from_movies(movies)
    data = encode(train)
    unknown = data.movie_ids[catalogue.index(data.movie_ids) < 0]
    if len(unknown):
        count = int(np.isin(train[MOVIE], unknown).sum())
        raise data_error(source, "rate movies missing from the movies table", column=MOVIE, count=count, examples=unknown)
    return catalogue, data


def validation_mask(data: Encoded, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Random ratings held out, except those whose user or movie would be left with no training rating."""
    held = rng.random(len(data.ratings)) < fraction
    kept_users = np.bincount(data.user_idx[~held], minlength=len(data.user_ids))
    kept_movies = np.bincount(data.movie_idx[~held], minlength=len(data.movie_ids))
    return held & (kept_users[data.user_idx] > 0) & (kept_movies[data.movie_idx] > 0)


def movie_means(movie_idx: np.ndarray, ratings: np.ndarray, n_movies: int, shrinkage: float) -> tuple[np.ndarray, float]:
    """(each movie's mean shrunk toward the global mean by `shrinkage` pseudo-ratings, global mean)."""
    global_mean = float(ratings.mean())
    sums = np.bincount(movie_idx, weights=ratings, minlength=n_movies)
    counts = np.bincount(movie_idx, minlength=n_movies)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums + shrinkage * global_mean) / (counts + shrinkage)
    return np.where(counts + shrinkage > 0, means, global_mean), global_mean


def check_new_ratings(
    ratings: Mapping[int, float], catalogue: Catalogue, rating_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(movie_ids, values) of a new user's {movie_id: rating}, or a DataError naming unknown movies or
    ratings outside the range (the check of every model that folds in a new user from ratings)."""
    movie_ids = np.fromiter((int(m) for m in ratings), np.int64, len(ratings))
    values = np.fromiter((float(v) for v in ratings.values()), np.float64, len(ratings))
    unknown = movie_ids[catalogue.index(movie_ids) < 0]
    if len(unknown):
        raise data_error("new user's ratings", "are for movies not in the catalogue", column=MOVIE, count=len(unknown), examples=unknown)
    low, high = rating_range
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        raise data_error(
            "new user's ratings",
            f"are outside the rating range {low:g}..{high:g}",
            column=RATING,
            count=int(bad.sum()),
            examples=values[bad],
        )
    return movie_ids, values


# ---- training (NumPy or TensorFlow) -------------------------------------------------------------


@dataclass
class History:
    """The training cost at each logged iteration and, with a validation slice, its RMSE.

    `steps[r]` is the 0-based iteration after which cost[r] was measured: every iteration when
    training with Adam (0, 1, 2, ...), the checkpoints when training with Spark ALS (whose
    last step is the last iteration). Left empty, it means every iteration (models saved before
    steps were recorded).
    """

    cost: list[float] = field(default_factory=list)
    validation_rmse: list[float] = field(default_factory=list)
    best_iteration: int | None = None
    seconds: float = 0.0
    steps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.steps:
            self.steps = list(range(len(self.cost)))
        if len(self.steps) != len(self.cost):
            raise ValueError(f"history: {len(self.steps)} steps for {len(self.cost)} costs")

    def record(self, step: int, cost: float) -> None:
        self.steps.append(int(step))
        self.cost.append(float(cost))

    @property
    def iterations_run(self) -> int:
        return self.steps[-1] + 1 if self.steps else 0

    def cost_steps(self) -> list[int]:
        """The 0-based iteration of each entry of `cost`: every one for Adam, the logged ones for Spark ALS."""
        return list(self.steps)


def row_dots(X: np.ndarray, W: np.ndarray, movie_idx: np.ndarray, user_idx: np.ndarray, dtype: Any = None) -> np.ndarray:
    """x_i . w_j for each index pair (i, j), accumulated in `dtype` (default: the factors').

    np.take is 3-4x faster than X[idx] for these row gathers (fancy indexing is generic).
    """
    return np.einsum("ij,ij->i", np.take(X, movie_idx, axis=0), np.take(W, user_idx, axis=0), dtype=dtype)


@dataclass(frozen=True)
class Batch:
    """Training pairs of one Adam step (or one chunk of a full-batch step), sorted by movie."""

    movie_idx: np.ndarray  # int32, non-decreasing
    user_idx: np.ndarray  # int32
    y: np.ndarray  # the normalised ratings, in the training dtype
    share: float  # this batch's share of the fitted ratings (scales the `sum` cost's penalty)


def _batches(n: int, params: CofiParams, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row groups of one pass; full batch keeps the (movie, user) order, mini-batches are shuffled."""
    if params.batch_size == 0:
        yield from (np.arange(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))
        return
    order = rng.permutation(n)
    # sorting each batch's rows keeps it sorted by movie (rows are sorted by movie): the sparse
    # products below read it as CSR rows, and gathers of X run in order
    yield from (np.sort(order[start : start + params.batch_size]) for start in range(0, n, params.batch_size))


def sparse_gradients(
    factors: Mapping[str, np.ndarray], batch: Batch, lambda_: float, cost: str = "sum", n_total: int | None = None
) -> tuple[float, dict[str, np.ndarray]]:
    """`sparse_cost` of one batch and its gradient in each factor, written out (module doc).

    The errors are one CSR matrix E (movies x users) built straight from the movie-sorted pairs, so
    E W and E^T X are SciPy's sparse-dense products: O(pairs x k), no (pairs x k) scatter.
    """
    X, W, b, c = factors["X"], factors["W"], factors["b"], factors.get("c")
    n_movies, n_users = len(X), len(W)
    movie_counts = np.bincount(batch.movie_idx, minlength=n_movies)
    predicted = row_dots(X, W, batch.movie_idx, batch.user_idx) + b[batch.user_idx]
    if c is not None:
        predicted += c[batch.movie_idx]
    errors = predicted - batch.y
    indptr = np.concatenate(([0], np.cumsum(movie_counts)))
    E = sparse.csr_matrix((errors, batch.user_idx, indptr), shape=(n_movies, n_users))
    grads = {"X": E @ W, "W": E.T @ X, "b": np.bincount(batch.user_idx, weights=errors, minlength=n_users)}
    if c is not None:
        grads["c"] = np.bincount(batch.movie_idx, weights=errors, minlength=n_movies)
    squared = float(errors @ errors)
    if cost == "mean":
        assert n_total is not None, 'cost="mean" divides by n_total, the number of training ratings'
        weights = {"X": movie_counts, "W": np.bincount(batch.user_idx, minlength=n_users), "c": movie_counts}
        penalty = 0.0
        for name in ("X", "W", "c"):
            if name in grads:
                value, weight = factors[name], weights[name].astype(factors[name].dtype)
                rows = np.sum(value**2, axis=1) if value.ndim == 2 else value**2
                penalty += float(weight @ rows)
                grads[name] += lambda_ * (weight[:, None] * value if value.ndim == 2 else weight * value)
        scale = 1.0 / n_total
        return (squared + lambda_ * penalty) * scale / 2.0, {name: g * g.dtype.type(scale) for name, g in grads.items()}
    penalty = sum(float(np.sum(factors[name] ** 2)) for name in ("X", "W", "c") if name in grads)
    for name in ("X", "W", "c"):
        if name in grads:
            grads[name] += (lambda_ * batch.share) * factors[name]
    return 0.5 * squared + lambda_ / 2.0 * batch.share * penalty, grads


class Adam:
    """Keras's Adam update (beta_1 0.9, beta_2 0.999, epsilon 1e-7) in NumPy, in the factors' dtype.

    As in Keras, the learning rate and the betas in the bias correction are float32 numbers even
    when the factors are float64 (in exact float64 a first step differs from Keras's by 1e-5 of itself).
    """

    beta_1, beta_2, epsilon = 0.9, 0.999, 1e-7

    def __init__(self, values: Mapping[str, np.ndarray], learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.m = {name: np.zeros_like(value) for name, value in values.items()}
        self.v = {name: np.zeros_like(value) for name, value in values.items()}
        self.steps = 0

    def apply(self, values: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Update `values` in place by one step."""
        self.steps += 1
        for name, gradient in grads.items():
            value, m, v = values[name], self.m[name], self.v[name]
            real = value.dtype.type
            power_1, power_2 = (real(np.float32(beta)) ** real(self.steps) for beta in (self.beta_1, self.beta_2))
            alpha = real(np.float32(self.learning_rate)) * np.sqrt(real(1) - power_2) / (real(1) - power_1)
            gradient = gradient.astype(value.dtype, copy=False)
            m += (gradient - m) * real(1 - self.beta_1)
            v += (gradient * gradient - v) * real(1 - self.beta_2)
            value -= m * alpha / (np.sqrt(v) + real(self.epsilon))


class _Trainer(Protocol):
    """What one fit needs of an engine: a step on a batch, or the gradient of a chunk and one update."""

    def step(self, batch: Any) -> float: ...
    def gradients(self, batch: Any) -> tuple[float, list[Any]]: ...
    def apply(self, grads: list[Any]) -> None: ...
    def prepare(self, batch: Batch) -> Any: ...
    def values(self) -> dict[str, np.ndarray]: ...


def run_pass(trainer: _Trainer, batches: Iterable[Any], full_batch: bool) -> float:
    """One pass over the ratings; returns the cost summed over its steps (the full cost for one batch)."""
    if not full_batch:
        return float(sum(trainer.step(batch) for batch in batches))
    batches = list(batches)
    if len(batches) == 1:
        return trainer.step(batches[0])
    total, summed = 0.0, None  # full batch in chunks: add up the gradients, then one Adam step
    for batch in batches:
        cost, grads = trainer.gradients(batch)
        total += cost
        summed = grads if summed is None else [a + g for a, g in zip(summed, grads, strict=True)]
    assert summed is not None
    trainer.apply(summed)
    return total


class _NumpyTrainer:
    """engine: numpy. The factors, Adam's moments and the written-out gradient of one fit."""

    def __init__(self, initial: Mapping[str, np.ndarray], params: CofiParams, n_total: int) -> None:
        self.params, self.n_total = params, n_total
        self.factors = {name: value.astype(params.dtype) for name, value in initial.items()}
        self.adam = Adam(self.factors, params.learning_rate)

    def prepare(self, batch: Batch) -> Batch:
        return batch

    def gradients(self, batch: Batch) -> tuple[float, list[np.ndarray]]:
        cost, grads = sparse_gradients(self.factors, batch, self.params.lambda_, self.params.cost, self.n_total)
        return cost, [grads[name] for name in self.factors]

    def apply(self, grads: list[np.ndarray]) -> None:
        self.adam.apply(self.factors, dict(zip(self.factors, grads, strict=True)))

    def step(self, batch: Batch) -> float:
        cost, grads = self.gradients(batch)
        self.apply(grads)
        return cost

    def values(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self.factors.items()}


class _TensorFlowTrainer:
    """engine: tensorflow. Variables, Keras's Adam and compiled steps of one fit."""

    def __init__(self, initial: Mapping[str, np.ndarray], params: CofiParams, n_total: int) -> None:
        import keras
        import tensorflow as tf

        seed_everything(params.seed)
        self.tf = tf
        self.params = params
        self.dtype = tf.float32 if params.dtype == "float32" else tf.float64
        self.variables = {name: tf.Variable(value.astype(params.dtype), name=name) for name, value in initial.items()}
        self.optimizer = keras.optimizers.Adam(learning_rate=params.learning_rate)
        self.optimizer.build(list(self.variables.values()))
        self.n_total = n_total
        signature = [
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], self.dtype),
            tf.TensorSpec([], self.dtype),
        ]
        self._step = tf.function(self._step_graph, input_signature=signature)
        self._gradients = tf.function(self._gradients_graph, input_signature=signature)
        self._apply = tf.function(self._apply_graph)

    def prepare(self, batch: Batch) -> tuple[Any, ...]:
        tf = self.tf
        return (
            tf.constant(batch.movie_idx),
            tf.constant(batch.user_idx),
            tf.constant(batch.y, self.dtype),
            tf.constant(batch.share, self.dtype),
        )

    def _cost(self, movie_idx: Any, user_idx: Any, y: Any, share: Any) -> Any:
        v = self.variables
        return sparse_cost(
            v["X"],
            v["W"],
            v["b"],
            movie_idx,
            user_idx,
            y,
            self.params.lambda_,
            v.get("c"),
            self.params.cost,
            share,
            self.n_total,
        )

    def _gradients_graph(self, movie_idx: Any, user_idx: Any, y: Any, share: Any) -> tuple[Any, list[Any]]:
        with self.tf.GradientTape() as tape:
            cost = self._cost(movie_idx, user_idx, y, share)
        grads = tape.gradient(cost, list(self.variables.values()))
        return cost, [self.tf.convert_to_tensor(g) for g in grads]

    def _apply_graph(self, grads: list[Any]) -> None:
        self.optimizer.apply_gradients(zip(grads, self.variables.values(), strict=True))

    def _step_graph(self, movie_idx: Any, user_idx: Any, y: Any, share: Any) -> Any:
        cost, grads = self._gradients_graph(movie_idx, user_idx, y, share)
        self._apply_graph(grads)
        return cost

    def step(self, batch: tuple[Any, ...]) -> float:
        return float(self._step(*batch).numpy())

    def gradients(self, batch: tuple[Any, ...]) -> tuple[float, list[Any]]:
        cost, grads = self._gradients(*batch)
        return float(cost.numpy()), grads

    def apply(self, grads: list[Any]) -> None:
        self._apply(grads)

    def values(self) -> dict[str, np.ndarray]:
        return {name: var.numpy() for name, var in self.variables.items()}


TRAINERS: dict[str, type[_NumpyTrainer] | type[_TensorFlowTrainer]] = {"numpy": _NumpyTrainer, "tensorflow": _TensorFlowTrainer}


def _initial(n_movies: int, n_users: int, params: CofiParams) -> dict[str, np.ndarray]:
    """N(0, init_scale^2) for X, W and b as in the course (b a vector here); movie biases start at 0."""
    rng = np.random.default_rng([params.seed, 0])
    k, scale = params.num_features, params.init_scale
    values = {
        "X": rng.standard_normal((n_movies, k)) * scale,
        "W": rng.standard_normal((n_users, k)) * scale,
        "b": rng.standard_normal(n_users) * scale,
    }
    if params.movie_bias:
        values["c"] = np.zeros(n_movies)
    return values


def train_factors(
    data: Encoded,
    held: np.ndarray,
    means: np.ndarray,
    params: CofiParams,
    rating_range: tuple[float, float],
    progress: bool | None = None,
) -> tuple[dict[str, np.ndarray], History]:
    """Minimise the cost with Adam on the ratings not `held` out; returns {X, W, b[, c]} and the history.

    The held-out ratings (a validation slice) are scored after every iteration: with `patience`
    training stops when they stop improving, and the best iteration's factors are returned.
    Raises ModelError when the cost stops being finite (nothing is returned to save).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    rng = np.random.default_rng([params.seed, 2])
    fit_rows = np.flatnonzero(~held)
    n_fit = len(fit_rows)
    normalised = (data.ratings - means[data.movie_idx]).astype(params.dtype)
    trainer = TRAINERS[params.engine](_initial(len(data.movie_ids), len(data.user_ids), params), params, n_fit)

    def group(rows: np.ndarray) -> Any:
        rows = fit_rows[rows]
        return trainer.prepare(Batch(data.movie_idx[rows], data.user_idx[rows], normalised[rows], len(rows) / n_fit))

    full_batch = params.batch_size == 0
    fixed = [group(rows) for rows in _batches(n_fit, params, rng)] if full_batch else None
    history, best, waited = History(), None, 0
    held_rows = np.flatnonzero(held)
    bar = tqdm(range(params.iterations), desc="cofi", unit="it", disable=None if progress is None else not progress)
    for iteration in bar:
        # mini-batches are built one at a time: a pass never holds more than one batch's tensors
        groups = fixed if fixed is not None else (group(rows) for rows in _batches(n_fit, params, rng))
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging fit overflows: the check below names it
            cost = run_pass(trainer, groups, full_batch)
        if not np.isfinite(cost):
            raise ModelError(
                f"cofi: the training cost became {cost} at iteration {iteration}; lower cofi.learning_rate "
                f"or cofi.init_scale, or raise cofi.lambda_ (no model was written)"
            )
        history.record(iteration, cost)
        if len(held_rows):
            factors = trainer.values()
            rmse = _rmse(factors, data, means, held_rows, rating_range)
            history.validation_rmse.append(rmse)
            if best is None or rmse < best[0]:
                best, waited = (rmse, iteration, factors), 0
            else:
                waited += 1
                if params.patience is not None and waited >= params.patience:
                    break
        bar.set_postfix(cost=f"{cost:.4g}")
    factors = trainer.values()
    if best is not None:
        history.best_iteration, factors = best[1], best[2]
    history.seconds = time.perf_counter() - started
    return factors, history


def _rmse(
    factors: Mapping[str, np.ndarray], data: Encoded, means: np.ndarray, rows: np.ndarray, rating_range: tuple[float, float]
) -> float:
    squared = 0.0
    for start in range(0, len(rows), CHUNK):  # bounded memory on large validation slices
        part = rows[start : start + CHUNK]
        movie, user = data.movie_idx[part], data.user_idx[part]
        predicted = np.clip(_dot_rows(factors, movie, user) + means[movie], *rating_range)
        squared += float(np.sum((predicted - data.ratings[part]) ** 2))
    return float(np.sqrt(squared / len(rows)))


def _dot_rows(factors: Mapping[str, np.ndarray], movie: np.ndarray, user: np.ndarray) -> np.ndarray:
    """x_i . w_j + b_j (+ c_i) for index pairs of known movies and users, in float64."""
    out = row_dots(factors["X"], factors["W"], movie, user, np.float64) + factors["b"][user]
    if "c" in factors:
        out += factors["c"][movie]
    return out


def factor_parameters(factors: Mapping[str, np.ndarray]) -> ParameterCounts:
    """The learned numbers of a factorization {X, W, b[, c]}: w_j and b_j per user, x_i (and the
    movie bias c_i) per movie, nothing shared."""
    (n_users, k), n_movies = factors["W"].shape, len(factors["X"])
    bias = "c" in factors
    per_movie = factors["X"].size + (factors["c"].size if bias else 0)
    parts = f"w_j, b_j: {n_users:,} users x ({k} + 1); x_i{', c_i' if bias else ''}: {n_movies:,} movies x {k}{' + 1' if bias else ''}"
    return ParameterCounts(per_user=factors["W"].size + factors["b"].size, per_movie=per_movie, shared=0, parts=parts)


# ---- the model ----------------------------------------------------------------------------------


class CofiModel(SupportRanking, ParameterTotal):
    """A trained factorization with everything needed to predict and recommend (see module doc)."""

    predicts_ratings: ClassVar[bool] = True

    def __init__(
        self,
        *,
        user_ids: np.ndarray,
        movie_ids: np.ndarray,
        factors: Mapping[str, np.ndarray],
        means: np.ndarray,
        global_mean: float,
        rating_range: tuple[float, float],
        catalogue: Catalogue,
        seen: SeenItems,
        params: CofiParams,
        history: History | None = None,
    ) -> None:
        self.user_ids, self.movie_ids = user_ids, movie_ids
        self.factors = dict(factors)
        self.means, self.global_mean = means, float(global_mean)
        self.rating_range = (float(rating_range[0]), float(rating_range[1]))
        self.catalogue, self.seen, self.params = catalogue, seen, params
        self.history = history or History()
        self._columns = catalogue.index(movie_ids)  # catalogue position of each trained movie
        self._x64: np.ndarray | None = None  # X as float64, cast on first use by _scores

    # -- training --
    @classmethod
    def fit(cls, data: TrainingData, params: CofiParams, *, progress: bool | None = None) -> CofiModel:
        """Train on `data.ratings` (ratings contract) over the catalogue `data.movies`; the cost
        history is `model.history`."""
        train, source = data.ratings, data.source
        check_train(train, source)
        catalogue, encoded = encode_against_catalogue(train, data.movies, source)
        held = np.zeros(len(encoded.ratings), bool)
        if params.validation_fraction > 0:
            held = validation_mask(encoded, params.validation_fraction, np.random.default_rng([params.seed, 1]))
        # means from the ratings Adam fits: the validation slice is not looked at
        means, global_mean = movie_means(encoded.movie_idx[~held], encoded.ratings[~held], len(encoded.movie_ids), params.mean_shrinkage)
        factors, history = train_factors(encoded, held, means, params, data.scale.bounds, progress)
        return cls.assemble(train, encoded, catalogue, factors, (means, global_mean), data.scale.bounds, params, history)

    @classmethod
    def assemble(
        cls,
        train: pd.DataFrame,
        data: Encoded,
        catalogue: Catalogue,
        factors: dict[str, np.ndarray],
        means: tuple[np.ndarray, float],
        rating_range: tuple[float, float],
        params: CofiParams,
        history: History,
    ) -> CofiModel:
        """A model from trained factors, whichever engine trained them (Adam or Spark ALS)."""
        movie_means_, global_mean = means
        return cls(
            user_ids=data.user_ids,
            movie_ids=data.movie_ids,
            factors=factors,
            means=movie_means_,
            global_mean=global_mean,
            rating_range=rating_range,
            catalogue=catalogue,
            seen=SeenItems.from_ratings(train, catalogue),
            params=params,
            history=history,
        )

    def parameters(self) -> ParameterCounts:
        return factor_parameters(self.factors)

    def embedded_movies(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the movies with training ratings, their x_i)."""
        return self.movie_ids, self.factors["X"]

    # -- predictions --
    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """Stars clipped to the rating range; unknown user -> movie mean, unknown movie -> global mean."""
        users, movies = check_pairs(pairs)
        user, movie = index_of(users, self.user_ids), index_of(movies, self.movie_ids)
        out = np.full(len(users), self.global_mean)
        known_movie = movie >= 0
        out[known_movie] = self._movie_base()[movie[known_movie]]
        both = known_movie & (user >= 0)
        out[both] += self._interaction(movie[both], user[both])
        return np.clip(out, *self.rating_range)

    def _movie_base(self) -> np.ndarray:
        """What a user with w = 0, b = 0 gets for each trained movie: its mean (+ its bias)."""
        base = self.means.astype(np.float64)
        return base + self.factors["c"] if "c" in self.factors else base

    def _interaction(self, movie: np.ndarray, user: np.ndarray) -> np.ndarray:
        """x_i . w_j + b_j per pair, CHUNK pairs at a time (the gathered rows stay O(CHUNK x k))."""
        X, W = self.factors["X"], self.factors["W"]
        out = np.empty(len(movie), np.float64)
        for start in range(0, len(movie), CHUNK):
            rows = slice(start, start + CHUNK)
            out[rows] = row_dots(X, W, movie[rows], user[rows], np.float64)
        return out + self.factors["b"][user]

    def _scores(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """(len(biases) x catalogue) unclipped scores for users with these w (rows) and b."""
        block = np.full((len(biases), len(self.catalogue)), self.global_mean)
        if self._x64 is None:  # cast once: score_block runs once per block of users
            self._x64 = self.factors["X"].astype(np.float64)
        block[:, self._columns] = self._movie_base() + weights @ self._x64.T + biases[:, None]
        return block

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        """Unclipped predicted ratings over the whole catalogue for a block of users (rank with these;
        predict() returns the same values clipped). Unknown users get the movie means. With a
        ranking set (`with_ranking`), the support-adjusted scores instead."""
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        known = pos >= 0
        rows = np.maximum(pos, 0)  # gather, then cast: only the block's users are copied
        weights = np.where(known[:, None], self.factors["W"][rows].astype(np.float64), 0.0)
        biases = np.where(known, self.factors["b"][rows].astype(np.float64), 0.0)
        return self.rank_scores(self._scores(weights, biases))

    def _list(self, scores: np.ndarray, n: int, exclude: np.ndarray | None) -> TopList:
        ranked = rank_catalogue(self.catalogue, scores, n, exclude)
        return dataclasses.replace(ranked, scores=np.clip(ranked.scores, *self.rating_range))

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """top_list() as a DataFrame[movie_id, title, score]."""
        return self.top_list(user_id, n, exclude_seen).frame()

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList:
        """The n movies with the highest predicted rating (ranked unclipped, shown clipped)."""
        if index_of(np.array([user_id], np.int64), self.user_ids)[0] < 0:
            raise RecsysError(f"unknown user {user_id}: not in the training ratings (a new user can give ratings instead: --ratings)")
        scores = self.score_block(np.array([user_id], np.int64))[0]
        return self._list(scores, n, seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen))

    def fit_new_user(self, ratings: Mapping[int, float]) -> tuple[np.ndarray, float]:
        """(w, b) minimising this model's cost for a new user with X (and means, biases) held fixed.

        Closed-form ridge: the cost is quadratic in (w, b) once X is fixed, so one least-squares solve
        gives the exact minimiser (no learning rate, no iterations, deterministic). The penalty is the
        one training used: lambda on w (b unpenalised, as in the course), times the number of
        ratings under `cost: mean`. No rating of a trained movie gives w = 0, b = 0.
        """
        movie_ids, values = check_new_ratings(ratings, self.catalogue, self.rating_range)
        rows = index_of(movie_ids, self.movie_ids)
        rows, values = rows[rows >= 0], values[rows >= 0]
        k = self.params.num_features
        if len(rows) == 0:
            return np.zeros(k), 0.0
        design = np.hstack([self.factors["X"][rows].astype(np.float64), np.ones((len(rows), 1))])
        target = values - self._movie_base()[rows]
        lam = self.params.lambda_ * (len(rows) if self.params.cost == "mean" else 1.0)
        penalty = np.sqrt(lam) * np.eye(k + 1)[:k]
        solution = np.linalg.lstsq(np.vstack([design, penalty]), np.concatenate([target, np.zeros(k)]), rcond=None)[0]
        return solution[:k], float(solution[k])

    def recommend_for_ratings(self, ratings: Mapping[int, float], n: int = 10) -> pd.DataFrame:
        """Top movies for a new user described by {movie_id: rating}, the rated movies excluded."""
        w, b = self.fit_new_user(ratings)
        scores = self.rank_scores(self._scores(w[None, :], np.array([b])))[0]
        exclude = np.zeros(len(self.catalogue), bool)
        exclude[self.catalogue.index(np.fromiter(ratings, np.int64, len(ratings)))] = True
        return self._list(scores, n, exclude).frame()

    # -- persistence --
    def save(self, directory: str | Path) -> None:
        """cofi.npz (factors, means, id maps, catalogue, seen items, history and its steps) + cofi.json; no pickle."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"factor_{name}": value for name, value in self.factors.items()}
        arrays.update(
            user_ids=self.user_ids,
            movie_ids=self.movie_ids,
            means=self.means,
            cost_history=np.asarray(self.history.cost, np.float64),
            cost_steps=np.asarray(self.history.steps, np.int64),
            validation_rmse=np.asarray(self.history.validation_rmse, np.float64),
            **self.catalogue.to_arrays(),
            **self.seen.to_arrays(),
        )
        save_arrays(directory, ARRAYS, arrays)
        meta = {
            "format": FORMAT,
            "params": self.params.model_dump(),
            "rating_range": list(self.rating_range),
            "global_mean": self.global_mean,
            "best_iteration": self.history.best_iteration,
            "seconds": self.history.seconds,
        }
        write_json(directory / META, meta)

    @classmethod
    def load(cls, directory: str | Path) -> CofiModel:
        directory = Path(directory)
        meta_path = directory / META
        meta = read_model_meta(directory, META)
        if meta.get("format") != FORMAT:
            raise ModelError(f"{meta_path}: not a {FORMAT} model (format {meta.get('format')!r}); retrain it")
        arrays = load_arrays(directory, ARRAYS)
        factors = {key.removeprefix("factor_"): value for key, value in arrays.items() if key.startswith("factor_")}
        history = History(
            cost=arrays["cost_history"].tolist(),
            steps=arrays["cost_steps"].tolist() if "cost_steps" in arrays else [],
            validation_rmse=arrays["validation_rmse"].tolist(),
            best_iteration=meta["best_iteration"],
            seconds=meta["seconds"],
        )
        return cls(
            user_ids=arrays["user_ids"],
            movie_ids=arrays["movie_ids"],
            factors=factors,
            means=arrays["means"],
            global_mean=meta["global_mean"],
            rating_range=tuple(meta["rating_range"]),
            catalogue=Catalogue.from_arrays(arrays),
            seen=SeenItems.from_arrays(arrays),
            params=CofiParams.model_validate(meta["params"]),
            history=history,
        )
