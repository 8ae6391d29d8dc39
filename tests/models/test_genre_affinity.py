"""Genre affinity: a hand-computed case, ties broken by popularity, unknown users, the contract, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import GenreAffinityParams, parse_params
from pipeline.data.schema import GENRES, MOVIE, RATING, TIMESTAMP, TITLE, USER, YEAR
from pipeline.errors import ConfigError, DataError
from pipeline.models.genre_affinity import GenreAffinityModel
from tests.factories import tiny_movies, tiny_ratings, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract


def movies() -> pd.DataFrame:
    genres = {1: "Comedy", 2: "Drama", 3: "Comedy|Drama", 4: "Comedy", 5: "Comedy|Drama", 6: "", 7: "Drama"}
    return pd.DataFrame(
        {MOVIE: list(genres), TITLE: [f"M{i}" for i in genres], YEAR: pd.array([2000] * 7, "Int64"), GENRES: list(genres.values())}
    )


def train() -> pd.DataFrame:
    """User 1 rates movie 1 (Comedy) 5, movie 2 (Drama) 3, movie 3 (Comedy|Drama) 4; user 2 rates
    movie 6 (no genre) 3 and movie 1 2."""
    return pd.DataFrame({USER: [1, 1, 1, 2, 2], MOVIE: [1, 2, 3, 6, 1], RATING: [5.0, 3.0, 4.0, 3.0, 2.0], TIMESTAMP: 0})


def test_scores_of_a_hand_worked_case():
    """User 1: mean 4, deviations +1 (movie 1), -1 (movie 2), 0 (movie 3). Comedy holds movies 1 and 3
    (sum +1, n 2), Drama 2 and 3 (sum -1, n 2); with prior 1: d = +1/3 and -1/3. Movie 4 (Comedy)
    scores 1/3, movie 5 (Comedy|Drama) the mean 0, movie 6 (no genre) 0, movie 7 (Drama) -1/3.
    User 2: mean 2.5, Comedy holds movie 1 only: (2 - 2.5) / (1 + 1) = -1/4."""
    model = GenreAffinityModel.fit(training_data(train(), movies()), GenreAffinityParams(prior=1.0))
    scores = model.score_block(np.array([1, 2]))
    np.testing.assert_allclose(scores[0], [1 / 3, -1 / 3, 0, 1 / 3, 0, 0, -1 / 3], atol=1e-6)
    np.testing.assert_allclose(scores[1], [-1 / 4, 0, -1 / 8, -1 / 4, -1 / 8, 0, 0], atol=1e-6)


def test_equal_affinities_go_to_the_more_rated_movie_then_the_lower_id():
    model = GenreAffinityModel.fit(training_data(train(), movies()), GenreAffinityParams(prior=1.0))
    # user 1's unseen movies: 4 (1/3), then 5 and 6 tie at 0: 6 has a training rating, 5 none; then 7
    assert list(model.recommend(1, n=4)[MOVIE]) == [4, 6, 5, 7]
    # an unknown user's scores are the popularity ranking: movie 1 (2 ratings), then 2, 3, 6, then 4, 5, 7
    order = np.argsort(-model.score_block(np.array([UNKNOWN_ID]))[0], kind="stable")
    assert list(model.catalogue.movie_ids[order]) == [1, 2, 3, 6, 4, 5, 7]


def test_the_prior_shrinks_toward_the_users_mean():
    sharp, flat = (
        GenreAffinityModel.fit(training_data(train(), movies()), GenreAffinityParams(prior=p)).score_block(np.array([1]))[0]
        for p in (0.0, 1e6)
    )
    np.testing.assert_allclose(sharp[3], 1 / 2, atol=1e-6)  # no prior: the plain mean deviation (1 + 0) / 2
    assert abs(flat[3]) < 1e-5


class TestGenreAffinityContract(ModelContract):
    predicts_ratings = False

    @pytest.fixture(scope="class")
    def train(self) -> pd.DataFrame:
        return tiny_ratings()

    @pytest.fixture(scope="class")
    def movies(self) -> pd.DataFrame:
        frame = tiny_movies()
        frame[GENRES] = ["Drama", "Comedy", "Comedy|Drama", ""] * 3
        return frame

    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: GenreAffinityModel.fit(training_data(train, movies), GenreAffinityParams(prior=2.0))

    @pytest.fixture(scope="class")
    def model(self, fit):
        return fit()


def test_predict_returns_the_scores_and_zero_outside_the_catalogue():
    model = GenreAffinityModel.fit(training_data(train(), movies()), GenreAffinityParams(prior=1.0))
    pairs = pd.DataFrame({USER: [1, 1, 2], MOVIE: [4, UNKNOWN_ID, 1]})
    block = model.score_block(np.array([1, 2]))
    np.testing.assert_allclose(model.predict(pairs), [block[0, 3], 0.0, block[1, 0]])


def test_movies_without_a_genres_column_or_bad_params_are_clear_errors():
    with pytest.raises(DataError, match="missing column genres"):
        GenreAffinityModel.fit(training_data(train(), movies().drop(columns=GENRES)))
    with pytest.raises(ConfigError, match=r"evaluate\.genre_affinity\.prior"):
        parse_params({"evaluate": {"genre_affinity": {"prior": -1}}})
