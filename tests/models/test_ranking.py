"""Score adjustments for top-N lists: hand-worked values and their effect on the order."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import RankingParams
from pipeline.models.base import top_n
from pipeline.models.ranking import adjust_scores
from tests.factories import low_rank_ratings, tiny_cofi

SCORES = np.array([[5.0, 4.0, 3.0]])  # the user's mean score is 4
SUPPORT = np.array([1, 100, 10])


def test_all_off_changes_nothing():
    np.testing.assert_array_equal(adjust_scores(SCORES, SUPPORT), SCORES)


def test_shrinkage_pulls_thinly_supported_scores_to_the_user_mean():
    adjusted = adjust_scores(SCORES, SUPPORT, shrinkage=9.0)
    # (1*5 + 9*4)/10 = 4.1; (100*4 + 9*4)/109 = 4; (10*3 + 9*4)/19 = 66/19
    np.testing.assert_allclose(adjusted, [[4.1, 4.0, 66 / 19]])
    assert top_n(SCORES, 1)[0].tolist() == [0]
    # a 5.0 from one rating falls behind a 4.5 from a hundred: mean 12.5/3, (5 + 37.5)/10 < (450 + 37.5)/109
    scores = np.array([[5.0, 4.5, 3.0]])
    assert top_n(scores, 2)[0].tolist() == [0, 1]
    assert top_n(adjust_scores(scores, SUPPORT, shrinkage=9.0), 2)[0].tolist() == [1, 0]
    assert adjust_scores(SCORES, np.array([0, 0, 0]), shrinkage=1.0).tolist() == [[4.0, 4.0, 4.0]]


def test_full_popularity_weight_is_the_popularity_order():
    adjusted = adjust_scores(SCORES, SUPPORT, popularity_weight=1.0)
    assert top_n(adjusted, 3)[0].tolist() == [1, 2, 0]
    half = adjust_scores(SCORES, SUPPORT, popularity_weight=0.5)
    z_scores = np.array([1.0, 0.0, -1.0]) * np.sqrt(3 / 2)
    z_pop = (np.log1p(SUPPORT) - np.log1p(SUPPORT).mean()) / np.log1p(SUPPORT).std()
    np.testing.assert_allclose(half[0], 0.5 * z_scores + 0.5 * z_pop)


def test_min_support_demotes_below_every_supported_movie_keeping_their_order():
    scores = np.array([[5.0, 4.0, 3.0, 4.5], [1.0, 2.0, 3.0, 0.5]])
    adjusted = adjust_scores(scores, np.array([1, 100, 10, 2]), min_support=5)
    assert top_n(adjusted, 4).tolist() == [[1, 2, 0, 3], [2, 1, 0, 3]]


def test_mismatched_shapes_and_impossible_settings_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        adjust_scores(SCORES, np.array([1, 2]))
    with pytest.raises(ValueError, match="popularity_weight"):
        adjust_scores(SCORES, SUPPORT, popularity_weight=1.5)


# ---- SupportRanking: the adjusted scores are what recommend() and score_block() rank by ----------
@pytest.fixture(scope="module")
def cofi_pair():
    """(a model, the same model ranked with shrinkage 20, its training ratings)."""
    train, movies = low_rank_ratings()
    raw = tiny_cofi(train, movies)
    return raw, raw.with_ranking(RankingParams(shrinkage=20, popularity_weight=0.0, min_support=0)), train


def test_a_model_ranks_by_raw_scores_until_a_ranking_is_set(cofi_pair):
    raw, ranked, train = cofi_pair
    users = np.unique(train["user_id"])[:5]
    support = np.bincount(raw.seen.indices, minlength=len(raw.catalogue))
    assert (ranked.movie_support() == support).all() and support.sum() == len(train)
    expected = adjust_scores(raw.score_block(users), support, shrinkage=20)
    np.testing.assert_allclose(ranked.score_block(users), expected)
    assert not np.allclose(ranked.score_block(users), raw.score_block(users))


def test_recommend_lists_follow_the_adjusted_scores(cofi_pair):
    raw, ranked, train = cofi_pair
    user = int(train["user_id"].iloc[0])
    scores = ranked.score_block(np.array([user]))[0]
    scores[raw.seen.of(user)] = -np.inf
    assert list(ranked.recommend(user, n=5)["movie_id"]) == list(raw.catalogue.movie_ids[top_n(scores, 5)])
    new_user = ranked.recommend_for_ratings({int(train["movie_id"].iloc[0]): 5.0}, n=5)
    assert new_user["score"].is_monotonic_decreasing and len(new_user) == 5
