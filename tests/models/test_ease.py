"""EASE: a hand-computed 3 x 3 case, the blocked in-place solve against the textbook formula, the
contract, the size limit (skipped before allocating), thresholds and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import EaseParams, parse_params
from pipeline.data.schema import MOVIE, RATING, TIMESTAMP, USER
from pipeline.errors import ConfigError, DataError, ModelSkipped, RecsysError
from pipeline.models.ease import EaseModel, ease_weights
from tests.factories import tiny_movies, tiny_ratings, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract


def ratings(users, movies, values=None) -> pd.DataFrame:
    values = np.full(len(users), 4.0) if values is None else values
    return pd.DataFrame({USER: users, MOVIE: movies, RATING: values, TIMESTAMP: np.zeros(len(users), np.int64)})


def hand_worked() -> pd.DataFrame:
    """X (users 1-3 x movies 10, 20, 30) = [[1, 1, 0], [0, 1, 1], [1, 0, 0]]."""
    return ratings([1, 1, 2, 2, 3], [10, 20, 20, 30, 10])


def test_ease_weights_of_a_hand_worked_3x3_case():
    """X^T X + I = [[3, 1, 0], [1, 3, 1], [0, 1, 2]], determinant 13, so P = [[5, -2, 1], [-2, 6, -3],
    [1, -3, 8]] / 13 and B_ij = -P_ij / P_jj: [[0, 1/3, -1/8], [2/5, 0, 3/8], [-1/5, 1/2, 0]].
    User 1 (x = [1, 1, 0]) scores x B = [2/5, 1/3, 1/4]; user 3 (x = [1, 0, 0]) [0, 1/3, -1/8];
    movie 40, which nobody rated, scores 0."""
    model = EaseModel.fit(training_data(hand_worked(), tiny_movies(4)), EaseParams(lambda_=1.0))
    expected = np.array([[0, 1 / 3, -1 / 8], [2 / 5, 0, 3 / 8], [-1 / 5, 1 / 2, 0]])
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    np.testing.assert_allclose(model.score_block(np.array([1, 3])), [[2 / 5, 1 / 3, 1 / 4, 0], [0, 1 / 3, -1 / 8, 0]], atol=1e-6)
    assert list(model.recommend(3, n=3)["movie_id"]) == [20, 40, 30]  # unseen only: 1/3, 0, -1/8


def test_the_blocked_in_place_solve_equals_the_textbook_formula(monkeypatch):
    import pipeline.models.ease as ease

    rng = np.random.default_rng(0)
    X = (rng.random((40, 11)) < 0.3).astype(np.float64)
    P = np.linalg.inv(X.T @ X + 7.0 * np.eye(11))
    textbook = np.eye(11) - P / np.diag(P)[None, :]
    monkeypatch.setattr(ease, "SYMMETRIZE_ROWS", 3)  # several blocks, the last one partial
    gram = (X.T @ X).astype(np.float32)
    weights = ease_weights(gram, 7.0)
    assert np.shares_memory(weights, gram)  # computed in place: one m x m array at the peak
    np.testing.assert_allclose(weights, textbook, atol=2e-6)


def test_the_gram_matrix_summed_over_user_blocks_is_x_transpose_x(monkeypatch):
    import pipeline.models.ease as ease

    train = tiny_ratings(n_users=9)
    whole = EaseModel.fit(training_data(train, tiny_movies()), EaseParams(lambda_=3.0))
    monkeypatch.setattr(ease, "GRAM_BLOCK_CELLS", 30)  # two users (x 12 movies) per block
    blocked = EaseModel.fit(training_data(train, tiny_movies()), EaseParams(lambda_=3.0))
    np.testing.assert_allclose(blocked.weights, whole.weights, atol=1e-6)


class TestEaseContract(ModelContract):
    predicts_ratings = False

    @pytest.fixture(scope="class")
    def train(self) -> pd.DataFrame:
        return tiny_ratings()

    @pytest.fixture(scope="class")
    def movies(self) -> pd.DataFrame:
        return tiny_movies()

    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: EaseModel.fit(training_data(train, movies), EaseParams(lambda_=2.0))

    @pytest.fixture(scope="class")
    def model(self, fit):
        return fit()


def test_predict_returns_the_scores_with_zero_for_unknown_users_and_movies():
    model = EaseModel.fit(training_data(hand_worked(), tiny_movies(4)), EaseParams(lambda_=1.0))
    pairs = pd.DataFrame({USER: [1, 1, UNKNOWN_ID, 3], MOVIE: [10, 30, 20, UNKNOWN_ID]})
    np.testing.assert_allclose(model.predict(pairs), [2 / 5, 1 / 4, 0, 0], atol=1e-6)
    assert model.predicts_ratings is False


def test_a_positive_threshold_keeps_only_those_ratings_in_x():
    train = ratings([1, 1, 2, 2, 3], [10, 20, 20, 30, 10], np.array([5.0, 2.0, 4.0, 4.5, 1.0]))
    model = EaseModel.fit(training_data(train, tiny_movies(4)), EaseParams(lambda_=1.0, positive_threshold=4.0))
    # X = [[1, 0, 0], [0, 1, 1]]: movies 20 and 30 only explain each other; movie 10 nothing
    assert list(model.catalogue.movie_ids[model.movie_columns]) == [10, 20, 30]
    np.testing.assert_allclose(model.weights[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(model.weights[1:, 1:], [[0, 0.5], [0.5, 0]], atol=1e-6)  # (1 + 1)^-1 pattern
    # user 3 has no positive: every score 0, yet it is a training user
    np.testing.assert_array_equal(model.score_block(np.array([3])), 0.0)
    assert len(model.recommend(3, n=2)) == 2


def test_more_movies_than_max_movies_is_skipped_with_a_reason_before_anything_is_allocated(monkeypatch):
    import pipeline.models.ease as ease

    def never(*args):
        raise AssertionError("the dense matrix must not be built")

    monkeypatch.setattr(ease, "gram_matrix", never)
    with pytest.raises(
        ModelSkipped, match=r"ease: 3 movies have a positive .*\.max_movies 2 \(its dense 3 x 3 float32 matrix needs 3.6e-08 GB\)"
    ):
        EaseModel.fit(training_data(hand_worked(), tiny_movies(4)), EaseParams(max_movies=2))
    assert issubclass(ModelSkipped, RecsysError)  # a stage that does not catch it still fails cleanly


def test_no_positive_or_bad_input_is_a_clear_data_error():
    with pytest.raises(DataError, match="no positive for EASE.*positive_threshold 4.5 \\(highest 4\\)"):
        EaseModel.fit(training_data(hand_worked(), tiny_movies(4)), EaseParams(positive_threshold=4.5))
    with pytest.raises(DataError, match="missing from the catalogue"):
        EaseModel.fit(training_data(hand_worked(), tiny_movies(2)))
    with pytest.raises(DataError, match="no rows"):
        EaseModel.fit(training_data(hand_worked().iloc[:0], tiny_movies(4)))


def test_save_load_keeps_the_weights_and_the_threshold(tmp_path):
    model = EaseModel.fit(training_data(hand_worked(), tiny_movies(4)), EaseParams(lambda_=1.0, positive_threshold=4.0))
    model.save(tmp_path)
    loaded = EaseModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert (loaded.lambda_, loaded.positive_threshold) == (1.0, 4.0)
    np.testing.assert_array_equal(loaded.score_block(np.array([1, 2, 3])), model.score_block(np.array([1, 2, 3])))


def test_params_defaults_and_rejections():
    assert EaseParams().max_movies == 20_000
    for key, value in (("lambda_", 0), ("max_movies", 0), ("positive_threshold", "inf"), ("unknown", 1)):
        with pytest.raises(ConfigError, match=rf"evaluate\.ease\.{key}"):
            parse_params({"evaluate": {"ease": {key: value}}})
