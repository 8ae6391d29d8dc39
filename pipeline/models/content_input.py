"""What the two towers are fed: feature tables checked and standardised, and the tf.data pipeline of
training batches.

Each batch is a slice of a seeded permutation of the rating rows; the feature rows of its distinct
users and movies are gathered from the user and movie tables inside the pipeline, so memory stays
O(ratings + users + movies), never O(ratings x features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import tensorflow as tf
else:
    from pipeline.deferred import tf

from pipeline.errors import DataError, data_error


def rating_batches(
    user_rows: np.ndarray,
    movie_rows: np.ndarray,
    targets: np.ndarray,
    user_table: np.ndarray,
    movie_table: np.ndarray,
    batch_size: int,
    seed: int | None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Mini-batches for `build_trainer`, gathered per batch from the feature tables:
    ((distinct users' features, user position per rating, distinct movies' features, movie
    position per rating), target). With a seed, every iteration (epoch) walks a new permutation of the rows, the same sequence of
    permutations for the same seed; without one, rows come in order (validation).
    With `shard` = (worker, workers), each batch keeps only rows worker, worker + workers, ... of
    the batch above: the workers together walk exactly the single-worker batches (multi_worker);
    every worker gets the same number of batches, one may be empty if the last batch is tiny.
    """
    n = len(targets)
    users = tf.constant(user_rows, tf.int32)
    movies = tf.constant(movie_rows, tf.int32)
    y = tf.constant(np.asarray(targets, np.float32).reshape(-1, 1))
    user_features = tf.constant(user_table, tf.float32)
    movie_features = tf.constant(movie_table, tf.float32)

    def gather(rows: tf.Tensor) -> tuple[tuple[tf.Tensor, ...], tf.Tensor]:
        distinct_users, user_index = tf.unique(tf.gather(users, rows))
        distinct_movies, movie_index = tf.unique(tf.gather(movies, rows))
        inputs = (
            tf.gather(user_features, distinct_users),
            user_index,
            tf.gather(movie_features, distinct_movies),
            movie_index,
        )
        return inputs, tf.gather(y, rows)

    return gathered_batches(row_batches(n, batch_size, seed, shard), gather)


def row_batches(n: int, batch_size: int, seed: int | None, shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Batches of row positions 0..n-1: with a seed, every iteration (epoch) a new permutation, the
    same sequence of permutations for the same seed; without one, in order. With `shard` = (worker,
    workers), each batch keeps rows worker, worker + workers, ... of it. Cardinality: ceil(n / batch_size)."""
    n_batches = -(-n // batch_size)
    if seed is None:
        orders = tf.data.Dataset.from_tensors(tf.range(n, dtype=tf.int32))
    else:
        seed_tensor = tf.constant(seed, tf.int64)
        orders = (
            tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            .take(1)
            .map(lambda s: tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=tf.stack([seed_tensor, s])))
        )

    def slices(order: tf.Tensor) -> tf.data.Dataset:
        batches = tf.data.Dataset.range(n_batches).map(lambda b: order[b * batch_size : tf.minimum((b + 1) * batch_size, n)])
        return batches if shard is None else batches.map(lambda rows: rows[shard[0] :: shard[1]])

    return orders.flat_map(slices).apply(tf.data.experimental.assert_cardinality(n_batches))


def gathered_batches(rows: tf.data.Dataset, gather: Callable[[tf.Tensor], Any]) -> tf.data.Dataset:
    """`gather` mapped over batches of row positions, in order, in parallel, prefetched."""
    return rows.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of a seeded random hold-out of `fraction` of n rows.

    The held-out ratings still count in their users' and movies' features (the features stage
    uses the whole train split), so val_loss is a little optimistic: it steers early stopping,
    the test split measures quality.
    """
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * fraction)
    if fraction > 0 and (n_val == 0 or n_val == n):
        raise DataError(f"validation_fraction {fraction} of {n} training ratings leaves an empty train or validation set")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str], file: str) -> np.ndarray:
    """The float64 matrix of `columns` of a features table, or a DataError naming the column.

    Missing columns, columns in another order than `columns` (the order the model was trained
    with) and NaN or infinite values are refused; other columns (ids) are ignored.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise data_error(file, f"missing column(s) {', '.join(missing)}; the model needs {', '.join(columns)}")
    present = [c for c in frame.columns if c in set(columns)]
    repeated = sorted({c for c in present if present.count(c) > 1})
    if repeated:
        raise data_error(file, f"column(s) {', '.join(repeated)} appear more than once")
    for position, (got, wanted) in enumerate(zip(present, columns, strict=True)):
        if got != wanted:
            raise data_error(
                file,
                f"is at feature position {present.index(wanted)} but the model was trained with it at {position} "
                f"(expected order: {', '.join(columns)})",
                column=wanted,
            )
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            raise data_error(file, "are NaN, infinite or not numbers", column=column, count=int(bad.sum()), examples=frame.loc[bad, column])
    return frame[list(columns)].to_numpy(dtype=np.float64)


def standardise(raw: np.ndarray, scaler: Any, columns: Sequence[str]) -> np.ndarray:
    """scaler.transform on named columns, as float32 for the towers."""
    return scaler.transform(pd.DataFrame(raw, columns=list(columns))).astype(np.float32)


def scaler_columns(scaler: Any) -> list[str]:
    return [str(c) for c in scaler.feature_names_in_]
