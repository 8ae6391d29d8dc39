"""Each trained model's learned numbers split into per-user, per-movie and shared ones, against
counts worked out by hand on tiny models: 3 users who rated 3 of a catalogue of 4 movies."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import CofiParams, CofiRankingParams, ContentParams, ContentRankingParams
from pipeline.features import MOVIE_FEATURE_COLUMNS, USER_FEATURE_COLUMNS, build_features
from pipeline.models.base import CountsParameters, EmbedsMovies
from pipeline.models.cofi import CofiModel
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.models.content import ContentModel
from pipeline.models.content_retrieval import ContentRankingModel
from tests.factories import clean_ratings, tiny_movies, training_data

N_USERS, N_RATED, N_CATALOGUE = 3, 3, 4  # movie 40 of the catalogue has no rating
U, M = len(USER_FEATURE_COLUMNS), len(MOVIE_FEATURE_COLUMNS)  # inputs of the user and movie towers


def data(with_features: bool = False):
    ratings, movies = clean_ratings(), tiny_movies(N_CATALOGUE)
    return training_data(ratings, movies, features=build_features(ratings, movies, 0.0) if with_features else None)


def counts(model: CountsParameters) -> tuple[int, int, int]:
    found = model.parameters()
    return found.per_user, found.per_movie, found.shared


@pytest.mark.parametrize("movie_bias", [False, True])
def test_cofi_has_w_and_b_per_user_and_x_per_rated_movie(movie_bias):
    model = CofiModel.fit(data(), CofiParams(num_features=2, iterations=2, movie_bias=movie_bias))
    k = 2
    assert counts(model) == (N_USERS * (k + 1), N_RATED * (k + movie_bias), 0)  # (9, 6 or 9, 0)
    assert model.parameter_count == model.parameters().total == N_USERS * (k + 1) + N_RATED * (k + movie_bias)
    assert "3 users x (2 + 1)" in model.parameters().parts and "3 movies x 2" in model.parameters().parts


def test_cofi_ranking_has_the_same_shape_over_the_whole_catalogue():
    model = CofiRankingModel.fit(data(), CofiRankingParams(num_features=2, iterations=1, positive_threshold=None))
    assert counts(model) == (N_USERS * 3, N_CATALOGUE * 2, 0)  # (9, 8, 0)
    assert model.parameter_count == 17


TINY_CONTENT = ContentParams(user_layers=[3], item_layers=[2], embedding_dim=2, epochs=1, validation_fraction=0, patience=None)


def test_content_has_only_shared_tower_weights():
    model = ContentModel.fit(data(with_features=True), TINY_CONTENT)
    user_tower = (U * 3 + 3) + (3 * 2 + 2)
    movie_tower = (M * 2 + 2) + (2 * 2 + 2)
    assert counts(model) == (0, 0, user_tower + movie_tower)
    assert model.parameters().total == model.network.count_params()


def test_content_ranking_adds_a_movie_id_embedding_row_per_catalogue_movie():
    params = ContentRankingParams(user_layers=[3], item_layers=[2], embedding_dim=2, id_dim=3, epochs=1, batch_size=4)
    model = ContentRankingModel.fit(data(with_features=True), params)
    user_tower = ((U + 3) * 3 + 3) + (3 * 2 + 2)  # features and the 3-wide history bag
    movie_tower = ((M + 3) * 2 + 2) + (2 * 2 + 2)  # features and the 3-wide id embedding
    assert counts(model) == (0, N_CATALOGUE * 3, user_tower + movie_tower + 3)  # + the unknown-movie row
    assert model.parameter_count == model.network.count_params() == user_tower + movie_tower + (N_CATALOGUE + 1) * 3


def test_content_ranking_without_ids_has_nothing_per_movie():
    params = ContentRankingParams(user_layers=[3], item_layers=[2], embedding_dim=2, id_dim=0, history=False, epochs=1, batch_size=4)
    model = ContentRankingModel.fit(data(with_features=True), params)
    assert counts(model) == (0, 0, (U * 3 + 3) + (3 * 2 + 2) + (M * 2 + 2) + (2 * 2 + 2))


def test_the_rating_models_expose_their_movie_vectors():
    cofi = CofiModel.fit(data(), CofiParams(num_features=2, iterations=2))
    content = ContentModel.fit(data(with_features=True), TINY_CONTENT)
    assert isinstance(cofi, EmbedsMovies) and isinstance(content, EmbedsMovies)
    ids, vectors = cofi.embedded_movies()
    assert ids.tolist() == [10, 20, 30] and vectors.shape == (3, 2)  # rated movies only: x_i is learned from ratings
    ids, vectors = content.embedded_movies()
    assert ids.tolist() == [10, 20, 30, 40] and vectors.shape == (4, 2)  # every catalogue movie has features
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
