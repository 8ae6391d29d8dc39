"""The content ranking model: its loss by hand, duplicates, determinism, persistence, the contract,
planted genre structure that popularity misses, cold movies, new users from genre tastes, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline.config import ContentRankingParams, parse_params
from pipeline.data.schema import GENRES, MOVIE, RATING, TIMESTAMP, TITLE, USER, YEAR
from pipeline.errors import ConfigError, DataError, ModelError
from pipeline.features import build_features
from pipeline.models.base import SeenItems
from pipeline.models.baselines import PopularityModel
from pipeline.models.content_retrieval import ContentRankingModel, history_table, in_batch_softmax_loss, log_popularity
from tests.factories import check_scores_from_saved_vectors, tiny_synthetic_split, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract

TINY = ContentRankingParams(
    user_layers=[16], item_layers=[16], embedding_dim=8, id_dim=8, epochs=2, batch_size=64, learning_rate=0.01,
    history_length=16, seed=7,
)  # fmt: skip


def loss_of(users, movies, ids, log_q, temperature) -> np.ndarray:
    return in_batch_softmax_loss(np.asarray(users, np.float64), np.asarray(movies, np.float64), ids, log_q, temperature).numpy()


# ---- the loss ---------------------------------------------------------------------------------


def test_two_by_two_loss_with_log_q_and_temperature_by_hand():
    # v_u . v_m = identity, temperature 0.5: logits [[2 - lq0, -lq1], [-lq0, 2 - lq1]], q = (1/4, 3/4)
    loss = loss_of(np.eye(2), np.eye(2), [10, 11], np.log([0.25, 0.75]), 0.5)
    # row 0: log(1 + exp(-lq1 - 2 + lq0)) = log(1 + e^-2 * (1/4) / (3/4)); row 1 likewise with 3
    np.testing.assert_allclose(loss, [np.log1p(np.exp(-2) / 3), np.log1p(3 * np.exp(-2))], rtol=1e-12)


def test_three_by_three_loss_masks_the_other_copy_of_the_rows_own_movie():
    users = [[1, 0], [0, 1], [1, 0]]
    movies = [[1, 0], [0, 1], [0.6, 0.8]]
    loss = loss_of(users, movies, [5, 7, 5], np.zeros(3), 1.0)
    expected = [
        np.log(np.e + 1) - 1,  # row 0: logits (1, 0, 0.6), column 2 holds movie 5 again: masked
        np.log(1 + np.e + np.exp(0.8)) - 1,  # row 1 (movie 7) keeps both copies of movie 5 as negatives
        np.log(1 + np.exp(0.6)) - 0.6,  # row 2: logits (1, 0, 0.6), column 0 masked
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_a_duplicate_of_the_rows_movie_changes_nothing_for_that_row():
    rng = np.random.default_rng(0)
    users, movies = rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    # a fourth row whose movie is row 0's again
    with_copy = loss_of(users, np.vstack([movies, movies[0]]), [1, 2, 3, 1], [0.1, 0.2, 0.3, 0.1], 0.3)
    users = users[:3]
    alone = loss_of(users, movies, [1, 2, 3], [0.1, 0.2, 0.3], 0.3)
    assert with_copy[0] == pytest.approx(alone[0], rel=1e-12)
    assert with_copy[1] > alone[1]  # another row does count the copy as a negative


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    users, movies = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    ids, log_q, temperature = [4, 9, 4], np.log([0.5, 0.2, 0.5]), 0.7

    def mean_loss(u, m):
        return float(np.mean(loss_of(u, m, ids, log_q, temperature)))

    u, m = tf.Variable(users), tf.Variable(movies)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(in_batch_softmax_loss(u, m, ids, log_q, temperature))
    analytic = [g.numpy() for g in tape.gradient(loss, [u, m])]
    eps = 1e-6
    for which, base in ((0, users), (1, movies)):
        numeric = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            step = np.zeros_like(base)
            step[index] = eps
            pair_plus = (base + step, movies) if which == 0 else (users, base + step)
            pair_minus = (base - step, movies) if which == 0 else (users, base - step)
            numeric[index] = (mean_loss(*pair_plus) - mean_loss(*pair_minus)) / (2 * eps)
        np.testing.assert_allclose(analytic[which], numeric, rtol=1e-6, atol=1e-9)


def test_log_popularity_is_the_log_share_of_the_positives():
    np.testing.assert_allclose(log_popularity(np.array([0, 0, 2, 0]), 4), [np.log(0.75), -np.inf, np.log(0.25), -np.inf], rtol=1e-6)


def test_history_table_keeps_a_seeded_subset_of_each_users_movies_padded_with_minus_one():
    ratings = pd.DataFrame({USER: [1, 1, 1, 2], MOVIE: [10, 20, 30, 20]})
    seen = SeenItems.from_ratings(ratings, _catalogue([10, 20, 30]))
    table = history_table(seen, 2, seed=0)
    assert table.shape == (2, 2) and set(table[0]) < {0, 1, 2} and len(set(table[0])) == 2
    assert list(table[1]) == [1, -1]
    np.testing.assert_array_equal(history_table(seen, 2, seed=0), table)
    assert sorted(history_table(seen, 5, seed=3)[0][:3]) == [0, 1, 2]


def _catalogue(ids):
    from pipeline.models.base import Catalogue

    return Catalogue(np.asarray(ids, np.int64), np.array([f"m{i}" for i in ids]))


# ---- data ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_data():
    train, _, movies, features = tiny_synthetic_split()
    return train, movies, features


def fit_tiny(tiny_data, **overrides) -> ContentRankingModel:
    train, movies, features = tiny_data
    return ContentRankingModel.fit(training_data(train, movies, features=features), TINY.model_copy(update=overrides))


@pytest.fixture(scope="module")
def tiny_model(tiny_data) -> ContentRankingModel:
    return fit_tiny(tiny_data)


class TestContentRankingContract(ModelContract):
    predicts_ratings = False

    @pytest.fixture(scope="class")
    def fit(self, tiny_data):
        return lambda: fit_tiny(tiny_data)

    @pytest.fixture(scope="class")
    def model(self, tiny_model):
        return tiny_model

    @pytest.fixture(scope="class")
    def train(self, tiny_data):
        return tiny_data[0]

    @pytest.fixture(scope="class")
    def movies(self, tiny_data):
        return tiny_data[1]


def test_the_same_params_give_identical_scores_and_another_seed_does_not(tiny_model, tiny_data):
    users = np.unique(tiny_data[0][USER])[:5]
    np.testing.assert_array_equal(fit_tiny(tiny_data).score_block(users), tiny_model.score_block(users))
    assert not np.allclose(fit_tiny(tiny_data, seed=8).score_block(users), tiny_model.score_block(users))


def test_save_and_load_give_the_same_scores_everywhere(tiny_model, tiny_data, tmp_path: Path):
    tiny_model.save(tmp_path)
    loaded = ContentRankingModel.load(tmp_path)
    users = np.array([*np.unique(tiny_data[0][USER])[:3], UNKNOWN_ID])
    np.testing.assert_array_equal(loaded.score_block(users), tiny_model.score_block(users))
    np.testing.assert_array_equal(loaded.genre_scores({"Drama": 5}), tiny_model.genre_scores({"Drama": 5}))
    pairs = pd.DataFrame({USER: [users[0], UNKNOWN_ID], MOVIE: [tiny_model.catalogue.movie_ids[0], UNKNOWN_ID]})
    np.testing.assert_array_equal(loaded.predict(pairs), tiny_model.predict(pairs))
    assert loaded.history == tiny_model.history and loaded.params == tiny_model.params


def test_predict_is_the_score_block_entry_and_unknown_ids_get_finite_scores(tiny_model, tiny_data):
    user = int(tiny_data[0][USER].iloc[0])
    movies = tiny_model.catalogue.movie_ids[[0, 7]]
    pairs = pd.DataFrame({USER: [user, user, UNKNOWN_ID, user], MOVIE: [*movies, movies[0], UNKNOWN_ID]})
    scores = tiny_model.predict(pairs)
    block = tiny_model.score_block(np.array([user, UNKNOWN_ID]))
    np.testing.assert_allclose(scores[:3], [block[0, 0], block[0, 7], block[1, 0]], rtol=1e-6)
    assert np.isfinite(scores).all() and tiny_model.predict(pairs.head(0)).shape == (0,)
    assert not tiny_model.predicts_ratings


def test_a_loaded_model_scores_known_and_unknown_users_from_saved_vectors_without_tensorflow(
    tiny_model, tiny_data, tmp_path: Path, monkeypatch
):
    users = np.array([*np.unique(tiny_data[0][USER])[:4], UNKNOWN_ID])
    check_scores_from_saved_vectors(tiny_model, "content_ranking", users, tmp_path, monkeypatch)


def test_every_param_changes_the_scores(tiny_model, tiny_data):
    overrides = {
        "user_layers": [12], "item_layers": [12], "embedding_dim": 6, "positive_threshold": 3.0, "temperature": 0.2,
        "logq_correction": False, "popularity_prior": 1.0, "id_dim": 4, "id_dropout": 0.5, "history": False,
        "history_length": 4, "history_dropout": 0.6, "blank_history": 0.6, "epochs": 1, "batch_size": 32,
        "learning_rate": 0.003, "seed": 8,
    }  # fmt: skip
    assert set(overrides) == set(ContentRankingParams.model_fields)
    users = np.unique(tiny_data[0][USER])[:6]
    reference = tiny_model.score_block(users)
    unchanged = [
        key for key, value in overrides.items() if np.allclose(fit_tiny(tiny_data, **{key: value}).score_block(users), reference, atol=1e-5)
    ]
    assert unchanged == []


# ---- planted structure: two genre groups -------------------------------------------------------


def planted(n_per_genre: int = 24, horror_fans: int = 12, romance_fans: int = 28, seed: int = 0):
    """Horror fans rate horror 5, romance fans romance 5; everyone rates 6 hits 3.

    Romance fans outnumber horror fans, so popularity recommends romance to everyone. One horror
    and one romance movie (the last of each) are never rated: the new releases.
    """
    rng = np.random.default_rng(seed)
    horror = np.arange(1, n_per_genre + 1)
    romance = horror + 100
    hits = np.arange(201, 207)
    movies = pd.DataFrame(
        {
            MOVIE: np.concatenate([horror, romance, hits]),
            TITLE: [f"Movie {i}" for i in np.concatenate([horror, romance, hits])],
            YEAR: pd.array([2000] * (2 * n_per_genre + len(hits)), dtype="Int64"),
            GENRES: ["Horror"] * n_per_genre + ["Romance"] * n_per_genre + ["Action"] * len(hits),
        }
    )
    rows = []
    for user in range(1, horror_fans + romance_fans + 1):
        liked = horror[:-1] if user <= horror_fans else romance[:-1]
        picks = rng.choice(liked, size=len(liked) * 2 // 3, replace=False)
        rows += [(user, m, 5.0) for m in picks] + [(user, m, 3.0) for m in hits]
    ratings = pd.DataFrame(rows, columns=[USER, MOVIE, RATING])
    ratings[TIMESTAMP] = 1_000_000_000
    return ratings, movies, horror, romance


@pytest.fixture(scope="module")
def planted_model():
    ratings, movies, horror, romance = planted()
    params = ContentRankingParams(
        user_layers=[16], item_layers=[16], embedding_dim=8, id_dim=8, epochs=30, batch_size=64, learning_rate=0.01,
        history_length=32, seed=3,
    )  # fmt: skip
    model = ContentRankingModel.fit(training_data(ratings, movies, features=build_features(ratings, movies, 0.0)), params)
    return model, ratings, movies, horror, romance


def test_recovers_the_unseen_movies_of_the_users_genre_where_popularity_does_not(planted_model):
    model, ratings, movies, horror, _ = planted_model
    popularity = PopularityModel.fit(training_data(ratings, movies))
    fans = np.arange(1, 13)
    liked = set(horror[:-1])  # the rated horror movies each fan has not rated yet

    def share_liked(recommender) -> float:
        return float(np.mean([recommender.recommend(int(u), n=5)[MOVIE].isin(liked).mean() for u in fans]))

    assert share_liked(model) >= 0.9
    assert share_liked(popularity) <= 0.1


def test_a_movie_without_ratings_is_scored_from_its_genres(planted_model):
    model, _ratings, _, horror, romance = planted_model
    assert model.movie_support()[model.catalogue.index(np.array([horror[-1], romance[-1]]))].tolist() == [0, 0]
    block = model.score_block(np.arange(1, 41))
    new_horror, new_romance = model.catalogue.index(np.array([horror[-1], romance[-1]]))
    prefers_horror = block[:, new_horror] > block[:, new_romance]
    assert prefers_horror[:12].all() and not prefers_horror[12:].any()


def test_a_new_user_from_genre_tastes_gets_that_genre(planted_model):
    model, _, _, horror, romance = planted_model
    trained_horror = set(horror[:-1])  # the new release has no positive, so no id row of its own
    assert set(model.catalogue.movie_ids[model.genre_history({"Horror": 5, "romance": 1})]) == trained_horror
    assert set(model.catalogue.movie_ids[model.genre_history({"Romance": 1})]) == trained_horror  # hits: no positives
    assert set(model.catalogue.movie_ids[model.genre_history({"Horror": 5, "Romance": 5})]) == trained_horror | set(romance[:-1])
    assert model.recommend_for_genres({"Horror": 5}, n=5)[MOVIE].isin(horror).all()
    assert model.recommend_for_genres({"romance": 5, "Horror": 1}, n=5)[MOVIE].isin(romance).all()


def test_stated_tastes_list_their_shelf_first_then_the_best_of_the_rest(planted_model):
    model, _, movies, horror, _romance = planted_model
    action = movies[MOVIE][movies[GENRES] == "Action"].to_numpy()  # six movies, everyone rates them 3
    listed = model.recommend_for_genres({"Action": 5}, n=10)
    assert set(listed[MOVIE][:6]) == set(action) and not listed[MOVIE][6:].isin(action).any()
    assert len(listed) == 10 and listed[MOVIE].is_unique
    rest = model.genre_scores({"Action": 5})[model.catalogue.index(listed[MOVIE][6:].to_numpy())]
    assert (np.diff(rest) <= 0).all()  # the rest in the model's order
    assert set(model.catalogue.movie_ids[model.taste_shelf({"Horror": 5, "Romance": 1})]) == set(horror)  # new release included


# ---- bad input ------------------------------------------------------------------------------------


def test_a_train_split_without_a_positive_is_a_data_error(tiny_data):
    with pytest.raises(
        DataError, match=r"train: column 'rating': 0 rows reach content_ranking.positive_threshold 5.5 \(highest training rating 5\)"
    ):
        fit_tiny(tiny_data, positive_threshold=5.5)


def test_an_untrained_model_refuses_to_save_and_writes_nothing(tmp_path: Path):
    with pytest.raises(ModelError, match="not trained"):
        ContentRankingModel(TINY).save(tmp_path)
    assert not any(tmp_path.iterdir())


def test_fit_without_the_features_tables_is_a_model_error(tiny_data):
    train, movies, _ = tiny_data
    with pytest.raises(ModelError, match="features stage"):
        ContentRankingModel.fit(training_data(train, movies), TINY)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"temperature": 0}, "content_ranking.temperature"),
        ({"temperature": -0.1}, "content_ranking.temperature"),
        ({"batch_size": 1}, "content_ranking.batch_size"),
        ({"batch_size": 0}, "content_ranking.batch_size"),
        ({"batch_size": -4}, "content_ranking.batch_size"),
        ({"positive_threshold": -1}, "content_ranking.positive_threshold"),
        ({"id_dropout": 1.0}, "content_ranking.id_dropout"),
        ({"popularity_prior": -0.5}, "content_ranking.popularity_prior"),
        ({"history_dropout": 1.0}, "content_ranking.history_dropout"),
        ({"history": True, "id_dim": 0}, "history needs id_dim > 0"),
        ({"temprature": 0.1}, "content_ranking.temprature: unknown key"),
    ],
)
def test_impossible_params_are_rejected_naming_the_key(section, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_params({"content_ranking": section})


def test_load_from_an_empty_folder_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="content_ranking.keras"):
        ContentRankingModel.load(tmp_path)
