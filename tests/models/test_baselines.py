"""Baselines: the shared model contract, hand-worked biases, and Surprise's figures on ml-latest-small."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import BiasParams
from pipeline.data.schema import RatingScale
from pipeline.errors import DataError, ModelError
from pipeline.evaluation.metrics import evaluate_model
from pipeline.models.base import SeenItems
from pipeline.models.baselines import BiasModel, GlobalMeanModel, PopularityModel, fit_biases
from pipeline.split import split_ratings
from tests.factories import tiny_movies, tiny_ratings, training_data
from tests.models.contract import ModelContract

FOUR_STARS = RatingScale(1.0, 4.0, 1.0)


class BaselineFixtures:
    @pytest.fixture(scope="class")
    def train(self) -> pd.DataFrame:
        return tiny_ratings()

    @pytest.fixture(scope="class")
    def movies(self) -> pd.DataFrame:
        return tiny_movies()

    @pytest.fixture(scope="class")
    def model(self, fit):
        return fit()


class TestGlobalMeanContract(BaselineFixtures, ModelContract):
    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: GlobalMeanModel.fit(training_data(train, movies))


class TestBiasContract(BaselineFixtures, ModelContract):
    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: BiasModel.fit(training_data(train, movies), BiasParams(reg_user=2.0, reg_movie=1.0, iterations=3))


class TestPopularityContract(BaselineFixtures, ModelContract):
    predicts_ratings = False

    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: PopularityModel.fit(training_data(train, movies))


def three_ratings() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 20, 10], "rating": [4.0, 2.0, 5.0], "timestamp": [0, 0, 0]})


def test_one_pass_of_biases_hand_worked():
    # mean 11/3; b_u1 = (1/3 - 5/3) / (1 + 2) = -4/9, b_u2 = (4/3) / (1 + 1) = 2/3;
    # b_m10 = ((1/3 + 4/9) + (4/3 - 2/3)) / (1 + 2) = 13/27, b_m20 = (-5/3 + 4/9) / (1 + 1) = -11/18
    mean, user_bias, movie_bias = fit_biases(np.array([4.0, 2.0, 5.0]), np.array([0, 0, 1]), np.array([0, 1, 0]), 2, 3, 1.0, 1.0, 1)
    assert mean == pytest.approx(11 / 3)
    np.testing.assert_allclose(user_bias, [-4 / 9, 2 / 3])
    np.testing.assert_allclose(movie_bias, [13 / 27, -11 / 18, 0.0])  # the third movie has no rating


def test_bias_model_predicts_mean_plus_biases_and_falls_back_to_zero_bias():
    model = BiasModel.fit(training_data(three_ratings(), tiny_movies(3)), BiasParams(reg_user=1.0, reg_movie=1.0, iterations=1))
    pairs = pd.DataFrame({"user_id": [1, 2, 99, 1], "movie_id": [10, 20, 10, 30]})
    expected = [11 / 3 - 4 / 9 + 13 / 27, 11 / 3 + 2 / 3 - 11 / 18, 11 / 3 + 13 / 27, 11 / 3 - 4 / 9]
    np.testing.assert_allclose(model.predict(pairs), expected)


def test_bias_model_without_regularization_fits_a_single_rating_exactly():
    ratings = three_ratings().head(1)
    model = BiasModel.fit(training_data(ratings, tiny_movies(2)), BiasParams(reg_user=0.0, reg_movie=0.0, iterations=2))
    assert model.predict(ratings[["user_id", "movie_id"]])[0] == pytest.approx(4.0)
    assert model.movie_bias[1] == 0.0  # no rating, no regularization: still 0, not NaN


@pytest.mark.parametrize("setting", [{"reg_user": 50.0}, {"reg_movie": 50.0}, {"iterations": 1}])
def test_every_bias_setting_changes_the_predictions(setting):
    train, movies = tiny_ratings(), tiny_movies()
    base = {"reg_user": 2.0, "reg_movie": 1.0, "iterations": 3}
    pairs = train[["user_id", "movie_id"]]
    before = BiasModel.fit(training_data(train, movies), BiasParams(**base)).predict(pairs)
    after = BiasModel.fit(training_data(train, movies), BiasParams(**{**base, **setting})).predict(pairs)
    assert not np.allclose(before, after)


def test_predictions_are_clipped_to_the_rating_range():
    ratings = pd.DataFrame({"user_id": [1, 1], "movie_id": [10, 20], "rating": [5.0, 5.0], "timestamp": [0, 0]})
    model = BiasModel.fit(training_data(ratings, tiny_movies(2), scale=FOUR_STARS))
    assert model.predict(ratings[["user_id", "movie_id"]]).tolist() == [4.0, 4.0]
    assert GlobalMeanModel.fit(training_data(ratings, tiny_movies(2), scale=FOUR_STARS)).predict(ratings).tolist() == [4.0, 4.0]


def test_popularity_ranks_by_training_count_with_ties_to_the_lower_id():
    ratings = pd.DataFrame({"user_id": [1, 2, 3, 1, 2, 4], "movie_id": [30, 30, 30, 20, 20, 40], "rating": 3.0, "timestamp": 0})
    model = PopularityModel.fit(training_data(ratings, tiny_movies(5)))
    assert model.counts.tolist() == [0, 2, 3, 1, 0]
    assert model.recommend(4, n=4)[["movie_id", "score"]].values.tolist() == [[30, 3], [20, 2], [10, 0], [50, 0]]
    with pytest.raises(ModelError, match="does not predict"):
        model.predict(ratings)


def test_score_block_scores_users_unknown_to_train():
    model = BiasModel.fit(training_data(three_ratings(), tiny_movies(3)), BiasParams(reg_user=1.0, reg_movie=1.0, iterations=1))
    block = model.score_block(np.array([2, 99]))
    np.testing.assert_allclose(block[1], 11 / 3 + model.movie_bias)
    np.testing.assert_allclose(block[0] - block[1], 2 / 3)


def test_fitting_on_movies_outside_the_catalogue_or_nothing_is_a_data_error():
    with pytest.raises(DataError, match="1 rows rate movies missing from the catalogue"):
        BiasModel.fit(training_data(three_ratings(), tiny_movies(1)))
    with pytest.raises(DataError, match="no rows"):
        GlobalMeanModel.fit(training_data(three_ratings().head(0), tiny_movies(2)))
    with pytest.raises(DataError, match="rating"):
        PopularityModel.fit(training_data(three_ratings().drop(columns="rating"), tiny_movies(2)))


def test_loading_another_kind_of_model_or_an_empty_folder_is_a_model_error(tmp_path):
    PopularityModel.fit(training_data(three_ratings(), tiny_movies(2))).save(tmp_path / "pop")
    assert json.loads((tmp_path / "pop" / "model.json").read_text())["kind"] == "popularity"
    with pytest.raises(ModelError, match="'popularity' model, not 'bias'"):
        BiasModel.load(tmp_path / "pop")
    with pytest.raises(ModelError, match="not found"):
        BiasModel.load(tmp_path / "nothing")


def test_surprise_figures_on_the_ml_latest_small_split(shared_datasets):
    """Reference figures measured on this split: scikit-surprise 1.1.5's BaselineOnly RMSE 0.8824 /
    MAE 0.6769; popularity (most-rated in train) P@10 0.1215, R@10 0.1027, nDCG@10 0.1578.

    Tolerances: 0.001 on RMSE/MAE (same algorithm and defaults); 0.0005 on the ranking metrics
    (the figures' rounding), which also checks ties go to the lower movie_id as in the reference.
    """
    folder = shared_datasets / "ml-latest-small"
    ratings = pd.read_csv(folder / "ratings.csv").rename(columns={"userId": "user_id", "movieId": "movie_id"})
    movies = pd.read_csv(folder / "movies.csv").rename(columns={"movieId": "movie_id"})
    train, test = split_ratings(ratings, "random", 0.2, 42)
    bias = BiasModel.fit(training_data(train, movies))
    popularity = PopularityModel.fit(training_data(train, movies))
    seen = SeenItems.from_ratings(train, bias.catalogue)
    settings = {"k": 10, "relevance_threshold": 4.0, "cold_threshold": 5}
    bias_result, _ = evaluate_model(bias, train, test, seen, **settings)
    popularity_result, _ = evaluate_model(popularity, train, test, seen, **settings)
    assert bias_result["rmse"] == pytest.approx(0.8824, abs=0.001)
    assert bias_result["mae"] == pytest.approx(0.6769, abs=0.001)
    assert popularity_result["n_ranked_users"] == 599
    assert popularity_result["precision_at_k"] == pytest.approx(0.1215, abs=0.0005)
    assert popularity_result["recall_at_k"] == pytest.approx(0.1027, abs=0.0005)
    assert popularity_result["ndcg_at_k"] == pytest.approx(0.1578, abs=0.0005)
