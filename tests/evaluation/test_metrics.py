"""Metrics against hand-worked cases and their edges."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError, ModelError
from pipeline.evaluation.metrics import (
    activity_labels,
    cold_mask,
    coverage,
    error_by_activity,
    evaluate_model,
    flat_metrics,
    mae,
    map_at_k,
    ndcg_at_k,
    per_user_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    relevant_items,
    rmse,
    top_k_items,
)
from pipeline.models.base import Catalogue, SeenItems
from pipeline.models.baselines import BiasModel, PopularityModel
from tests.factories import tiny_movies, tiny_ratings, training_data


def scored(actual, predicted) -> pd.DataFrame:
    return pd.DataFrame({"rating": actual, "prediction": predicted})


def lists(rows) -> pd.DataFrame:
    """[(user, [movies best first]), ...] -> the top-k frame."""
    records = [(user, movie, rank) for user, movies in rows for rank, movie in enumerate(movies)]
    return pd.DataFrame(records, columns=["user_id", "movie_id", "rank"]).astype("int64")


def pairs(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "movie_id"]).astype("int64")


# ---- rating metrics -------------------------------------------------------------------------
def test_rmse_and_mae_hand_worked():
    frame = scored([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])  # errors 1, 0, 2
    assert rmse(frame) == pytest.approx(math.sqrt(5 / 3))
    assert mae(frame) == pytest.approx(1.0)


def test_rmse_of_a_perfect_prediction_is_zero():
    x = np.array([0.5, 3.0, 4.5, 5.0])
    assert rmse(scored(x, x)) == 0.0 and mae(scored(x, x)) == 0.0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"rating": [1.0]}), "missing column.*prediction"),
        (scored([], []), "no rows"),
        (scored([1.0, 2.0], [np.nan, 2.0]), "1 rows have a missing or infinite"),
    ],
)
def test_bad_rating_metric_input_is_a_data_error(frame, message):
    with pytest.raises(DataError, match=message):
        rmse(frame)


# ---- ranking metrics ------------------------------------------------------------------------
def test_ranking_metrics_hand_worked():
    # user 7: list [3, 1, 5], relevant {1, 2}: one hit at rank 2 (1-based).
    top, relevant = lists([(7, [3, 1, 5])]), pairs([(7, 1), (7, 2)])
    assert precision_at_k(top, relevant, 3) == pytest.approx(1 / 3)
    assert recall_at_k(top, relevant, 3) == pytest.approx(1 / 2)
    # DCG = 1/log2(3); ideal DCG = 1 + 1/log2(3)
    assert ndcg_at_k(top, relevant, 3) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # AP = precision at the hit (1/2) / min(2 relevant, k=3)
    assert map_at_k(top, relevant, 3) == pytest.approx(0.25)


def test_metrics_average_over_ranked_users():
    # user 1: perfect list [1, 2]; user 2: no hit; user 3 has no relevant movie and is not ranked.
    top = lists([(1, [1, 2]), (2, [5, 6]), (3, [1, 2])])
    relevant = pairs([(1, 1), (1, 2), (2, 9)])
    result = ranking_metrics(top, relevant, 2, n_catalogue=10)
    assert result == pytest.approx(
        {"precision_at_k": 0.5, "recall_at_k": 0.5, "ndcg_at_k": 0.5, "map_at_k": 0.5, "coverage": 0.4, "n_ranked_users": 2}
    )


def test_a_perfect_ranking_scores_one():
    top, relevant = lists([(1, [4, 2, 9])]), pairs([(1, 2), (1, 9), (1, 4)])
    result = ranking_metrics(top, relevant, 3, 10)
    assert [result[m] for m in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k")] == pytest.approx([1, 1, 1, 1])


def test_more_relevant_movies_than_k_caps_the_ideal_list_at_k():
    top, relevant = lists([(1, [1, 2])]), pairs([(1, 1), (1, 2), (1, 3)])
    assert ndcg_at_k(top, relevant, 2) == pytest.approx(1.0)
    assert map_at_k(top, relevant, 2) == pytest.approx(1.0)
    assert recall_at_k(top, relevant, 2) == pytest.approx(2 / 3)


def test_hits_beyond_rank_k_do_not_count():
    top, relevant = lists([(1, [5, 6, 1])]), pairs([(1, 1)])
    assert precision_at_k(top, relevant, 2) == 0.0
    assert per_user_metrics(top, relevant, 3)["ndcg"].iloc[0] == pytest.approx(1 / 2)  # 1/log2(4) / 1


def test_a_ranked_user_without_a_list_scores_zero():
    top, relevant = lists([(1, [1])]), pairs([(1, 1), (2, 5)])
    assert precision_at_k(top, relevant, 1) == pytest.approx(0.5)
    assert per_user_metrics(top, relevant, 1)["recall"].tolist() == [1.0, 0.0]


def test_no_relevant_item_at_all_is_a_data_error_not_nan():
    with pytest.raises(DataError, match="no test rating reaches the relevance threshold"):
        ndcg_at_k(lists([(1, [1])]), pairs([]), 1)


def test_ranking_input_without_its_columns_is_a_data_error():
    with pytest.raises(DataError, match="top-k lists: missing column.*rank"):
        precision_at_k(lists([(1, [1])]).drop(columns="rank"), pairs([(1, 1)]), 1)


def test_coverage_counts_distinct_movies_over_the_catalogue():
    assert coverage(lists([(1, [1, 2]), (2, [2, 3])]), 6) == pytest.approx(0.5)


def test_relevant_items_keep_ratings_at_or_above_the_threshold():
    test = pd.DataFrame({"user_id": [1, 1, 2, 2], "movie_id": [1, 2, 3, 3], "rating": [4.0, 3.5, 5.0, 5.0]})
    assert relevant_items(test, 4.0).values.tolist() == [[1, 1], [2, 3]]


# ---- top-k lists from score blocks ----------------------------------------------------------
@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.from_movies(tiny_movies(5))  # movies 10..50


def test_top_k_excludes_training_movies_and_breaks_ties_by_movie_id(catalogue):
    seen = SeenItems.from_ratings(pd.DataFrame({"user_id": [1], "movie_id": [20]}), catalogue)
    scores = np.array([[1.0, 9.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    top = top_k_items(lambda users: scores[users - 1], catalogue, seen, np.array([1, 2]), k=2)
    assert top.values.tolist() == [[1, 30, 0], [1, 40, 1], [2, 10, 0], [2, 20, 1]]


def test_fewer_candidates_than_k_and_a_user_who_rated_everything(catalogue):
    train = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 2, 2], "movie_id": [10, 20, 30, 10, 20, 30, 40, 50]})
    seen = SeenItems.from_ratings(train, catalogue)
    top = top_k_items(lambda users: np.ones((len(users), 5)), catalogue, seen, np.array([1, 2]), k=3)
    assert top.values.tolist() == [[1, 40, 0], [1, 50, 1]]  # user 2 has no candidate left
    relevant = pairs([(1, 40), (1, 50), (2, 10)])
    per_user = per_user_metrics(top, relevant, 3)
    assert per_user["precision"].tolist() == pytest.approx([2 / 3, 0.0])  # precision divides by k
    assert per_user["recall"].tolist() == [1.0, 0.0]
    assert per_user["ndcg"].tolist() == pytest.approx([1.0, 0.0])


def test_blocks_of_users_give_the_same_lists_as_one_block():
    train, movies = tiny_ratings(n_users=9), tiny_movies()
    model = BiasModel.fit(training_data(train, movies))
    seen = SeenItems.from_ratings(train, model.catalogue)
    users = np.arange(1, 10)
    whole = top_k_items(model.score_block, model.catalogue, seen, users, k=4)
    blocked = top_k_items(model.score_block, model.catalogue, seen, users, k=4, block_cells=25)  # 2 users a block
    pd.testing.assert_frame_equal(whole, blocked)
    assert len(whole) == 9 * 4


def test_a_score_block_of_the_wrong_shape_or_with_nan_is_a_model_error(catalogue):
    seen = SeenItems.from_ratings(pd.DataFrame({"user_id": [1], "movie_id": [10]}), catalogue)
    with pytest.raises(ModelError, match="shape"):
        top_k_items(lambda users: np.ones((len(users), 4)), catalogue, seen, np.array([1]), k=2)
    with pytest.raises(ModelError, match="1 NaN"):
        top_k_items(lambda users: np.array([[1.0, np.nan, 2, 3, 4]]), catalogue, seen, np.array([1]), k=2)


# ---- cold start, activity, the whole protocol -----------------------------------------------
def test_cold_ratings_have_a_user_or_movie_with_few_training_ratings():
    train = pd.DataFrame({"user_id": [1, 1, 1, 2], "movie_id": [10, 20, 30, 10]})
    test = pd.DataFrame({"user_id": [1, 2, 1, 3], "movie_id": [10, 10, 40, 10]})
    # user 1: 3 train ratings, user 2: 1, user 3: 0; movie 10: 2, movie 40: 0
    assert cold_mask(test, train, 2).tolist() == [False, True, True, True]
    assert cold_mask(test, train, 1).tolist() == [False, False, True, True]


def test_error_by_activity_bins_users_by_training_ratings():
    frame = scored([3.0, 3.0, 4.0, 5.0], [4.0, 3.0, 2.0, 5.0])
    table = error_by_activity(frame, np.array([0, 3, 3, 700]))
    assert table["activity"].tolist() == ["0", "1-4", "500+"]
    assert table["n_test_ratings"].tolist() == [1, 2, 1]
    assert table["rmse"].tolist() == pytest.approx([1.0, math.sqrt(2), 0.0])
    assert table["mae"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert activity_labels((0, 1, 5)) == ["0", "1-4", "5+"]


def test_evaluate_model_gives_the_schema_of_evaluation_json():
    train, movies = tiny_ratings(), tiny_movies()
    test = tiny_ratings(per_user=3, seed=1).assign(user_id=lambda f: f["user_id"] + 4)  # users 5..12: 9..12 unknown
    bias, popularity = BiasModel.fit(training_data(train, movies)), PopularityModel.fit(training_data(train, movies))
    seen = SeenItems.from_ratings(train, bias.catalogue)
    settings = {"k": 3, "relevance_threshold": 4.0, "cold_threshold": 6}
    result, predictions = evaluate_model(bias, train, test, seen, **settings)
    keys = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "coverage", "n_test_ratings", "n_ranked_users", "cold"]
    assert list(result) == keys
    assert set(result["cold"]) == {"rmse", "mae", "n_test_ratings"}
    assert result["n_test_ratings"] == len(test) and len(predictions) == len(test)
    assert result["n_ranked_users"] == test.loc[test["rating"] >= 4.0, "user_id"].nunique()
    assert result["cold"]["n_test_ratings"] == cold_mask(test, train, 6).sum() > 0
    pop_result, none = evaluate_model(popularity, train, test, seen, **settings)
    assert none is None and "rmse" not in pop_result and "mae" not in pop_result
    assert pop_result["cold"] == {"n_test_ratings": result["cold"]["n_test_ratings"]}
    with pytest.raises(DataError, match="no rows"):
        evaluate_model(bias, train, test.head(0), seen, **settings)


def test_flat_metrics_prefix_nested_keys_and_drop_nulls():
    flat = flat_metrics({"rmse": 0.9, "n_test_ratings": 3, "cold": {"rmse": None, "n_test_ratings": 0}})
    assert flat == {"test_rmse": 0.9, "test_n_test_ratings": 3.0, "test_cold_n_test_ratings": 0.0}


def test_with_held_out_users_the_whole_test_set_is_cold_and_still_ranked():
    from pipeline.split import split_ratings

    train, test = split_ratings(tiny_ratings(n_users=10, per_user=8), "cold_user", 0.3, 0)
    model = BiasModel.fit(training_data(train, tiny_movies()))
    result, _ = evaluate_model(
        model, train, test, SeenItems.from_ratings(train, model.catalogue), k=3, relevance_threshold=4.0, cold_threshold=1
    )
    assert result["cold"]["n_test_ratings"] == result["n_test_ratings"] == len(test)
    assert result["cold"]["rmse"] == pytest.approx(result["rmse"])
    assert result["n_ranked_users"] == test.loc[test["rating"] >= 4.0, "user_id"].nunique() > 0


def test_with_a_time_cutoff_users_and_movies_first_seen_after_it_are_cold():
    from pipeline.split import split_ratings

    ratings = tiny_ratings(n_users=10, per_user=8)
    rng = np.random.default_rng(1)
    ratings["timestamp"] = rng.permutation(len(ratings)) + 1_000_000_000  # users 1..8 on both sides of the cutoff
    newcomers = ratings["user_id"].isin([9, 10])
    ratings.loc[newcomers, "timestamp"] += 10_000  # users 9 and 10 arrive after everyone else
    new_movie = pd.DataFrame({"user_id": [1, 2], "movie_id": [130, 130], "rating": [4.5, 2.0], "timestamp": [1_000_020_000] * 2})
    ratings = pd.concat([ratings, new_movie], ignore_index=True)  # movie 130 released last
    train, test = split_ratings(ratings, "time_cutoff", 0.3, 0, cutoff=1_000_000_060)
    assert not set(train["user_id"]) & {9, 10} and 130 not in set(train["movie_id"])
    model = BiasModel.fit(training_data(train, tiny_movies(13)))
    result, predictions = evaluate_model(
        model, train, test, SeenItems.from_ratings(train, model.catalogue), k=3, relevance_threshold=4.0, cold_threshold=1
    )
    unseen = test["user_id"].isin([9, 10]) | (test["movie_id"] == 130)
    assert result["cold"]["n_test_ratings"] == int(unseen.sum()) == 16 + 2
    assert np.isfinite(predictions).all() and math.isfinite(result["cold"]["rmse"])
    assert result["n_test_ratings"] > result["cold"]["n_test_ratings"]  # warm users' later ratings are not cold
    assert result["n_ranked_users"] == test.loc[test["rating"] >= 4.0, "user_id"].nunique()
