from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from pipeline.choices import SPLIT_STRATEGIES as STRATEGIES
from pipeline.config import SplitParams
from pipeline.errors import ConfigError, DataError
from pipeline.split import held_out_mask, split_ratings, temporal_test_mask

COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]


def frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS).astype({"user_id": "int64", "movie_id": "int64", "timestamp": "int64"})


def random_ratings(n: int = 2000, n_users: int = 60, n_movies: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, size=n, replace=False)
    return pd.DataFrame(
        {
            "user_id": (pairs // n_movies + 1).astype("int64"),
            "movie_id": (pairs % n_movies + 100).astype("int64"),
            "rating": rng.integers(1, 11, n) / 2.0,
            "timestamp": rng.integers(0, 50, n).astype("int64"),  # many ties on purpose
        }
    )


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(COLUMNS).reset_index(drop=True)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_train_and_test_partition_the_input(strategy: str) -> None:
    ratings = random_ratings()
    train, test = split_ratings(ratings, strategy, 0.25, 7)
    assert len(train) + len(test) == len(ratings)
    assert sort_rows(pd.concat([train, test])).equals(sort_rows(ratings))
    assert list(train.columns) == COLUMNS and train.dtypes.equals(ratings.dtypes)
    assert train.index.equals(pd.RangeIndex(len(train))) and test.index.equals(pd.RangeIndex(len(test)))


def test_the_split_param_offers_exactly_the_strategies_split_ratings_knows() -> None:
    assert typing.get_args(SplitParams.model_fields["strategy"].annotation) == STRATEGIES


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_split(strategy: str) -> None:
    ratings = random_ratings()
    first = split_ratings(ratings, strategy, 0.25, 3)
    second = split_ratings(ratings, strategy, 0.25, 3)
    assert first[0].equals(second[0]) and first[1].equals(second[1])


@pytest.mark.parametrize("strategy", ["random", "cold_user", "cold_item"])
def test_different_seeds_differ(strategy: str) -> None:
    ratings = random_ratings()
    _, test_a = split_ratings(ratings, strategy, 0.25, 1)
    _, test_b = split_ratings(ratings, strategy, 0.25, 2)
    assert not sort_rows(test_a).equals(sort_rows(test_b))


def test_random_takes_ceil_of_test_size_rows_like_sklearn() -> None:
    ratings = random_ratings(n=1001)
    train, test = split_ratings(ratings, "random", 0.2, 42)
    assert len(test) == 201 and len(train) == 800  # ceil(200.2)
    sk_train, sk_test = train_test_split(ratings, test_size=0.2, random_state=42)
    assert train.equals(sk_train.reset_index(drop=True))
    assert test.equals(sk_test.reset_index(drop=True))


def test_random_reproduces_the_benchmark_protocol(shared_datasets) -> None:
    raw = pd.read_csv(shared_datasets / "ml-latest-small" / "ratings.csv")
    ratings = raw.rename(columns={"userId": "user_id", "movieId": "movie_id"})
    train, test = split_ratings(ratings, "random", 0.2, 42)
    assert (len(train), len(test)) == (80_668, 20_168)
    sk_train, sk_test = train_test_split(ratings, test_size=0.2, random_state=42)
    assert train.equals(sk_train.reset_index(drop=True))
    assert test.equals(sk_test.reset_index(drop=True))


def test_temporal_hand_worked() -> None:
    ratings = frame(
        [
            (1, 10, 4.0, 500),
            (1, 11, 3.0, 100),
            (1, 12, 2.0, 300),
            (1, 13, 5.0, 200),
            (1, 14, 1.0, 400),  # user 1: 5 ratings, round(0.4 * 5) = 2 latest -> 500, 400
            (2, 10, 3.0, 100),  # user 2: single rating stays in train
            (3, 12, 4.0, 700),
            (3, 11, 2.0, 700),  # user 3: round(0.8) = 1, timestamps tie -> larger movie_id (12) is later
        ]
    )
    mask = temporal_test_mask(ratings, 0.4)
    assert mask.tolist() == [True, False, False, False, True, False, True, False]
    train, test = split_ratings(ratings, "temporal", 0.4, 0)
    assert sorted(zip(test.user_id, test.movie_id, strict=True)) == [(1, 10), (1, 14), (3, 12)]
    assert len(train) == 5


def test_temporal_tie_break_does_not_depend_on_row_order() -> None:
    ratings = random_ratings()
    shuffled = ratings.sample(frac=1.0, random_state=5).reset_index(drop=True)
    _, test_a = split_ratings(ratings, "temporal", 0.3, 0)
    _, test_b = split_ratings(shuffled, "temporal", 0.3, 0)
    assert sort_rows(test_a).equals(sort_rows(test_b))


def test_temporal_keeps_one_train_rating_per_user_and_test_is_latest() -> None:
    ratings = random_ratings()
    train, test = split_ratings(ratings, "temporal", 0.9, 0)  # 0.9 would empty small users without the cap
    assert set(train.user_id) == set(ratings.user_id)
    latest_train = train.groupby("user_id").timestamp.max()
    earliest_test = test.groupby("user_id").timestamp.min()
    assert (earliest_test >= latest_train.reindex(earliest_test.index)).all()


def test_temporal_test_size_within_per_user_rounding() -> None:
    ratings = random_ratings()
    _, test = split_ratings(ratings, "temporal", 0.25, 0)
    per_user = ratings.user_id.value_counts().sort_index()
    got = test.user_id.value_counts().reindex(per_user.index, fill_value=0)
    assert (np.abs(got - 0.25 * per_user) <= 0.5).all()


@pytest.mark.parametrize(("strategy", "column"), [("cold_user", "user_id"), ("cold_item", "movie_id")])
def test_cold_strategies_hold_out_whole_ids(strategy: str, column: str) -> None:
    ratings = random_ratings()
    train, test = split_ratings(ratings, strategy, 0.25, 11)
    assert set(train[column]).isdisjoint(set(test[column]))
    n_ids = ratings[column].nunique()
    assert test[column].nunique() == round(0.25 * n_ids)  # 60 users -> 15, 80 movies -> 20
    held = set(test[column])
    assert len(test) == ratings[column].isin(held).sum()


def test_held_out_mask_hand_worked_and_order_free() -> None:
    ids = pd.Series([5, 7, 5, 9, 7, 5])
    mask = held_out_mask(ids, 0.5, 0)  # round_half_up(1.5) = 2 of the 3 ids
    assert ids[mask].nunique() == 2
    assert set(ids[mask]).isdisjoint(set(ids[~mask]))
    reversed_mask = held_out_mask(ids[::-1].reset_index(drop=True), 0.5, 0)
    assert set(ids[mask]) == set(ids[::-1].reset_index(drop=True)[reversed_mask])


def test_empty_ratings_is_a_data_error() -> None:
    with pytest.raises(DataError, match="ratings: has no ratings"):
        split_ratings(frame([]), "random", 0.2, 0)


def test_empty_test_is_a_data_error_naming_strategy_and_sizes() -> None:
    ratings = frame([(1, 10, 4.0, 1), (1, 11, 3.0, 2), (2, 10, 5.0, 3)])
    with pytest.raises(DataError, match=r"'cold_user' with test_size 0\.1 on 3 ratings gives 3 train and 0 test"):
        split_ratings(ratings, "cold_user", 0.1, 0)  # round(0.2) = 0 users held out


def test_empty_train_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"'random' .* gives 0 train and 1 test"):
        split_ratings(frame([(1, 10, 4.0, 1)]), "random", 0.2, 0)


def test_missing_column_is_a_data_error() -> None:
    ratings = random_ratings().drop(columns="timestamp")
    with pytest.raises(DataError, match="ratings: missing column.*timestamp"):
        split_ratings(ratings, "temporal", 0.2, 0)


def test_unknown_strategy_and_bad_test_size_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="split.strategy"):
        split_ratings(random_ratings(), "by_genre", 0.2, 0)
    with pytest.raises(ConfigError, match="split.test_size"):
        split_ratings(random_ratings(), "random", 1.5, 0)


# ---- time_cutoff ------------------------------------------------------------------------------


def test_time_cutoff_hand_worked() -> None:
    ratings = frame(
        [
            (1, 10, 4.0, 100),
            (2, 10, 3.0, 300),  # user 2's only training rating
            (1, 11, 5.0, 200),
            (1, 12, 2.0, 400),  # at the cutoff: test
            (3, 13, 4.0, 500),  # user 3 and movie 13 first seen after the cutoff: test only
            (2, 11, 1.0, 399),
        ]
    )
    train, test = split_ratings(ratings, "time_cutoff", 0.2, 0, cutoff=400)
    assert train.timestamp.tolist() == [100, 300, 200, 399]  # input order kept on each side
    assert test.timestamp.tolist() == [400, 500]
    assert 3 not in set(train.user_id) and 13 not in set(train.movie_id)


def test_time_cutoff_never_puts_a_future_rating_in_train() -> None:
    ratings = random_ratings()
    for cutoff in (1, 17, 25, 49):
        train, test = split_ratings(ratings, "time_cutoff", 0.2, 0, cutoff=cutoff)
        assert (train.timestamp < cutoff).all() and (test.timestamp >= cutoff).all()
        assert train.timestamp.max() < test.timestamp.min()  # for every user at once, unlike `temporal`
    leaky_train, leaky_test = split_ratings(ratings, "temporal", 0.2, 0)
    assert leaky_train.timestamp.max() > leaky_test.timestamp.min()  # `temporal`: some users' future trains the others


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.5])
def test_time_cutoff_null_takes_the_test_size_quantile(test_size: float) -> None:
    rng = np.random.default_rng(4)
    ratings = random_ratings(n=3000).assign(timestamp=rng.integers(0, 10**9, 3000))  # (almost) no ties
    train, test = split_ratings(ratings, "time_cutoff", test_size, 0)
    assert len(test) == int(np.ceil(test_size * 3000))  # no ties at the cutoff: exactly ceil(test_size * n)
    assert train.timestamp.max() < test.timestamp.min()


def test_time_cutoff_quantile_keeps_ties_together() -> None:
    ratings = random_ratings()  # timestamps 0..49 with ~40 ratings each
    train, test = split_ratings(ratings, "time_cutoff", 0.2, 0)
    assert train.timestamp.max() < test.timestamp.min()
    assert 0.2 <= len(test) / len(ratings) < 0.2 + 0.05  # at least the share, at most one timestamp's ties more


def test_time_cutoff_is_deterministic_and_ignores_row_order_and_seed() -> None:
    ratings = random_ratings()
    shuffled = ratings.sample(frac=1.0, random_state=5).reset_index(drop=True)
    _, test_a = split_ratings(ratings, "time_cutoff", 0.3, 0)
    _, test_b = split_ratings(shuffled, "time_cutoff", 0.3, 99)
    assert sort_rows(test_a).equals(sort_rows(test_b))


@pytest.mark.parametrize(
    ("cutoff", "empty"),
    [(5, "train"), (100, "train"), (801, "test"), (10**10, "test")],
)
def test_a_cutoff_outside_the_time_range_is_one_clear_error(cutoff: int, empty: str) -> None:
    ratings = frame([(1, 10, 4.0, 100), (2, 10, 3.0, 800)])
    with pytest.raises(DataError) as info:
        split_ratings(ratings, "time_cutoff", 0.2, 0, cutoff=cutoff, file="data/raw/ratings.parquet")
    message = str(info.value)
    assert message.startswith("data/raw/ratings.parquet: split.cutoff ")
    assert "1970-01-01T00:01:40Z .. 1970-01-01T00:13:20Z" in message and f"{empty} (" in message


def test_a_quantile_cutoff_on_a_single_moment_is_a_clear_error() -> None:
    ratings = frame([(1, 10, 4.0, 100), (2, 10, 3.0, 100)])
    with pytest.raises(DataError, match=r"the cutoff at the test_size 0\.2 quantile .* train \(ratings before it\) would be empty"):
        split_ratings(ratings, "time_cutoff", 0.2, 0)
