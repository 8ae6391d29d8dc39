"""Divide ratings into train and test: pure, vectorized, seeded.

`split_ratings(ratings, strategy, test_size, seed)` returns `(train, test)`; every strategy
guarantees that train and test partition the input (each row in exactly one of them, none lost
or duplicated, index reset) and that the same inputs give the same split. The guarantees of each
strategy are in its function's docstring.
"""

from __future__ import annotations

from math import ceil, floor

import numpy as np
import pandas as pd

from pipeline.choices import SPLIT_STRATEGIES
from pipeline.data.schema import MOVIE, TIMESTAMP, USER
from pipeline.errors import ConfigError, DataError, data_error


def _round_half_up(x: float) -> int:
    return floor(x + 0.5)


def random_rows(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row positions of sklearn's `train_test_split(rows, test_size=, random_state=seed)`.

    Guarantees: exactly ceil(test_size * n) test rows (sklearn's rule), chosen by
    `np.random.RandomState(seed).permutation(n)`; train and test are returned in that permutation's
    order, so the split is row-for-row identical to sklearn's (the benchmarks' split of
    ml-latest-small: ratings.csv in file order, 0.2, seed 42 -> 80,668 train / 20,168 test rows).
    The legacy RandomState (not a Generator) is what makes that equality possible.
    """
    n_test = ceil(test_size * n)
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_test:], permutation[:n_test]


def temporal_test_mask(ratings: pd.DataFrame, test_size: float) -> np.ndarray:
    """Boolean mask of each user's latest ratings.

    Guarantees: a user with n ratings gets min(round_half_up(test_size * n), n - 1) of them in
    test, the latest by timestamp (ties broken by movie_id, then by row position), so every user
    keeps at least one (their earliest) rating in train and a user with a single rating stays
    entirely in train; no test rating of a user is older than any of their train ratings.
    No randomness: the seed is not used.
    """
    n = len(ratings)
    order = np.lexsort((np.arange(n), ratings[MOVIE].to_numpy(), ratings[TIMESTAMP].to_numpy(), ratings[USER].to_numpy()))
    users_sorted = ratings[USER].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    counts = np.diff(np.r_[starts, n])
    n_test = np.minimum(np.floor(test_size * counts + 0.5).astype(np.int64), counts - 1)
    position = np.arange(n) - np.repeat(starts, counts)
    from_end = np.repeat(counts, counts) - 1 - position
    mask = np.empty(n, dtype=bool)
    mask[order] = from_end < np.repeat(n_test, counts)
    return mask


def quantile_cutoff(timestamps: np.ndarray, test_size: float) -> int:
    """The moment that puts about a `test_size` share of the ratings at or after it: the
    (n - ceil(test_size * n))-th smallest timestamp (0-based), so ties with it are all in test."""
    n = len(timestamps)
    position = n - ceil(test_size * n)
    return int(np.partition(timestamps, position)[position])


def _utc(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")


def time_cutoff_mask(timestamps: np.ndarray, cutoff: int, file: str = "ratings", what: str = "split.cutoff") -> np.ndarray:
    """Boolean mask of the ratings at or after `cutoff` (unix seconds): the test side of the split.

    Guarantees: every train rating is older than every test rating, for all users together (no
    user's future is in anybody's training data); users and movies first seen at or after the
    cutoff are only in test. A cutoff at or before the first rating, or after the last, would leave
    train or test empty: a DataError naming the cutoff (`what` it is) and the ratings' time range.
    """
    first, last = int(timestamps.min()), int(timestamps.max())
    if not first < cutoff <= last:
        side = "train (ratings before it)" if cutoff <= first else "test (ratings at or after it)"
        raise DataError(
            f"{file}: {what} {_utc(cutoff)} is outside the ratings' time range {_utc(first)} .. {_utc(last)}: {side} would be empty"
        )
    return timestamps >= cutoff


def held_out_mask(ids: pd.Series, test_size: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows whose id belongs to a seeded sample of the distinct ids.

    Guarantees: exactly round_half_up(test_size * n_ids) distinct ids are held out, drawn with
    `np.random.default_rng(seed)` from the sorted distinct ids (so row order does not matter);
    every row of a held-out id is in test and none in train.
    """
    distinct = np.unique(ids.to_numpy())
    n_held = _round_half_up(test_size * len(distinct))
    held = np.random.default_rng(seed).choice(distinct, size=n_held, replace=False)
    return np.isin(ids.to_numpy(), held)


def _require(ratings: pd.DataFrame, columns: tuple[str, ...], file: str) -> None:
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise data_error(file, f"missing column(s) {', '.join(missing)} needed by the split")


_NEEDS: dict[str, tuple[str, ...]] = {
    "random": (),
    "temporal": (USER, MOVIE, TIMESTAMP),
    "cold_user": (USER,),
    "cold_item": (MOVIE,),
    "time_cutoff": (TIMESTAMP,),
}


def split_ratings(
    ratings: pd.DataFrame,
    strategy: str,
    test_size: float,
    seed: int,
    *,
    file: str = "ratings",
    cutoff: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `ratings` into (train, test) by `strategy` (random | temporal | cold_user | cold_item | time_cutoff).

    random: over rows, sklearn's train_test_split (see `random_rows`).
    temporal: each user's latest fraction (see `temporal_test_mask`).
    cold_user / cold_item: a seeded fraction of users / movies held out entirely (see `held_out_mask`);
    test_size is then a fraction of users / movies, not of rows.
    time_cutoff: ratings before `cutoff` (unix seconds) in train, the rest in test (see
    `time_cutoff_mask`); cutoff None = `quantile_cutoff` of the timestamps at test_size.
    Raises DataError on empty ratings, a missing column, or a split leaving train or test empty.
    """
    if strategy not in SPLIT_STRATEGIES:
        raise ConfigError(f"split.strategy: unknown strategy {strategy!r}; expected one of {', '.join(SPLIT_STRATEGIES)}")
    if not 0 < test_size < 1:
        raise ConfigError(f"split.test_size: must be between 0 and 1 (got {test_size!r})")
    if len(ratings) == 0:
        raise data_error(file, "has no ratings to split")
    _require(ratings, _NEEDS[strategy], file)
    if strategy == "random":
        train_rows, test_rows = random_rows(len(ratings), test_size, seed)
    else:
        if strategy == "temporal":
            mask = temporal_test_mask(ratings, test_size)
        elif strategy == "time_cutoff":
            timestamps = ratings[TIMESTAMP].to_numpy(np.int64)
            if cutoff is None:
                what = f"the cutoff at the test_size {test_size} quantile (split.cutoff null)"
                mask = time_cutoff_mask(timestamps, quantile_cutoff(timestamps, test_size), file, what)
            else:
                mask = time_cutoff_mask(timestamps, cutoff, file)
        else:
            mask = held_out_mask(ratings[USER if strategy == "cold_user" else MOVIE], test_size, seed)
        test_rows, train_rows = np.flatnonzero(mask), np.flatnonzero(~mask)
    if len(train_rows) == 0 or len(test_rows) == 0:
        raise DataError(
            f"{file}: split strategy '{strategy}' with test_size {test_size} on {len(ratings)} ratings "
            f"gives {len(train_rows)} train and {len(test_rows)} test rows; both must be non-empty"
        )
    train = ratings.iloc[train_rows].reset_index(drop=True)
    test = ratings.iloc[test_rows].reset_index(drop=True)
    return train, test
