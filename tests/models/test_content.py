"""The two-tower content model: architecture, input pipeline, contract, cold start, similarity, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ContentParams, SyntheticParams, parse_params
from pipeline.data.schema import GENRE_VOCABULARY, MOVIE, RATING, TITLE, USER, genre_matrix
from pipeline.data.synthetic import build_world, generate
from pipeline.errors import ConfigError, DataError, ModelError, RecsysError
from pipeline.features import USER_FEATURE_COLUMNS, build_features
from pipeline.models.baselines import BiasModel
from pipeline.models.content import MOVIE_TOWER, USER_TOWER, ContentModel, build_network, build_trainer
from pipeline.models.content_input import feature_matrix, rating_batches, validation_split
from tests.factories import check_scores_from_saved_vectors, split_rows, tiny_synthetic_split, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract

TINY = ContentParams(
    user_layers=[8], item_layers=[8], embedding_dim=4, learning_rate=0.05, epochs=8, batch_size=64,
    validation_fraction=0.2, patience=None, seed=7,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_synthetic_split()


def fit_tiny(tiny_data, **overrides) -> ContentModel:
    train, _, movies, features = tiny_data
    return ContentModel.fit(training_data(train, movies, features=features), TINY.model_copy(update=overrides))


@pytest.fixture(scope="module")
def tiny_model(tiny_data) -> ContentModel:
    return fit_tiny(tiny_data)


class TestContentContract(ModelContract):
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
        return tiny_data[2]


# ---- architecture ---------------------------------------------------------------------------


def test_towers_follow_params_with_hand_counted_parameters():
    network = build_network(4, 5, ContentParams(user_layers=[7, 5], item_layers=[6], embedding_dim=3))
    user, movie = network.get_layer(USER_TOWER), network.get_layer(MOVIE_TOWER)
    assert [(layer.units, layer.activation.__name__) for layer in user.layers[:-1]] == [(7, "relu"), (5, "relu"), (3, "linear")]
    assert [(layer.units, layer.activation.__name__) for layer in movie.layers[:-1]] == [(6, "relu"), (3, "linear")]
    assert type(user.layers[-1]).__name__ == "UnitNormalization"
    assert user.count_params() == (4 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3)  # 93
    assert movie.count_params() == (5 * 6 + 6) + (6 * 3 + 3)  # 57
    assert network.count_params() == 93 + 57


def test_fitted_model_reports_each_towers_parameter_count(tiny_model: ContentModel):
    n_user, n_movie = len(USER_FEATURE_COLUMNS), len(tiny_model.movie_columns)
    assert tiny_model.parameter_counts() == {
        "user_tower_params": (n_user * 8 + 8) + (8 * 4 + 4),
        "movie_tower_params": (n_movie * 8 + 8) + (8 * 4 + 4),
    }


def test_embeddings_have_unit_norm(tiny_model: ContentModel, tiny_data):
    users = tiny_model.known_user_vectors(np.array([*tiny_data[0][USER].unique()[:5], UNKNOWN_ID]))
    np.testing.assert_allclose(np.linalg.norm(tiny_model.movie_embeddings(), axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-5)


def test_prediction_is_the_dot_product_mapped_from_minus_one_one_to_the_training_range(tiny_model, tiny_data):
    train = tiny_data[0]
    pairs = train[[USER, MOVIE]].head(6)
    dots = np.einsum(
        "ij,ij->i",
        tiny_model.known_user_vectors(pairs[USER].to_numpy()),
        tiny_model.movie_embeddings()[tiny_model.catalogue.index(pairs[MOVIE].to_numpy())],
    )
    low, high = train[RATING].min(), train[RATING].max()
    np.testing.assert_allclose(tiny_model.predict(pairs), low + (dots + 1) / 2 * (high - low), rtol=1e-6)


def test_predictions_are_clipped_to_the_rating_range(tiny_model, tiny_data, tmp_path: Path):
    tiny_model.save(tmp_path)
    narrow = ContentModel.load(tmp_path)
    narrow.rating_range = (3.0, 3.2)
    predictions = narrow.predict(tiny_data[1][[USER, MOVIE]])
    assert predictions.min() >= 3.0 and predictions.max() <= 3.2
    assert (predictions == 3.0).any() or (predictions == 3.2).any()


def test_unknown_movie_gets_the_training_mean(tiny_model, tiny_data):
    user = int(tiny_data[0][USER].iloc[0])
    predicted = tiny_model.predict(pd.DataFrame({USER: [user], MOVIE: [UNKNOWN_ID]}))
    assert predicted[0] == pytest.approx(tiny_data[0][RATING].mean())


# ---- params ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        {"user_layers": [12]},
        {"item_layers": [12]},
        {"embedding_dim": 6},
        {"learning_rate": 0.01},
        {"epochs": 5},
        {"batch_size": 32},
        {"validation_fraction": 0.3},
        {"patience": 0},
        {"seed": 8},
    ],
    ids=lambda o: next(iter(o)),
)
def test_every_content_param_changes_the_result(override, tiny_model, tiny_data):
    changed = fit_tiny(tiny_data, **override)
    pairs = tiny_data[1][[USER, MOVIE]]
    assert not np.allclose(changed.predict(pairs), tiny_model.predict(pairs), atol=1e-4)


def test_every_content_param_is_covered_by_the_test_above():
    covered = {
        "user_layers",
        "item_layers",
        "embedding_dim",
        "learning_rate",
        "epochs",
        "batch_size",
        "validation_fraction",
        "patience",
        "seed",
    }
    distribution = {"distribute", "collective_timeout"}  # must NOT change the result: test_content_distributed.py
    assert set(ContentParams.model_fields) == covered | distribution


def test_early_stopping_stops_when_val_loss_stops_improving_and_keeps_the_best_epoch(tiny_data):
    model = fit_tiny(tiny_data, patience=0, epochs=30)
    val = model.history["val_loss"]
    assert len(val) < 30
    assert model.best_epoch == int(np.argmin(val))
    assert val[-1] >= val[-2]  # stopped right after the first epoch without improvement


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"patience": 3, "validation_fraction": 0.0}, "patience needs validation_fraction"),
        ({"user_layers": [8, 0]}, "content.user_layers.1"),
        ({"item_layers": []}, "content.item_layers"),
        ({"validation_fraction": 1.0}, "content.validation_fraction"),
        ({"batch_size": 0}, "content.batch_size"),
    ],
)
def test_impossible_content_params_are_rejected_by_config(content, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({"content": content})


# ---- input pipeline -------------------------------------------------------------------------


def epoch_rows(dataset) -> list[np.ndarray]:
    """The rating rows of each batch of one pass (targets were set to the row numbers)."""
    return [y.numpy()[:, 0].astype(int) for _, y in dataset]


def test_batches_gather_distinct_feature_rows_and_visit_every_rating_once_per_epoch():
    user_rows, movie_rows = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), np.array([3, 2, 1, 0, 3, 2, 1, 0, 3, 2])
    user_table = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    movie_table = np.array([[100.0], [101.0], [102.0], [103.0]])
    rows = np.arange(10, dtype=float)
    dataset = rating_batches(user_rows, movie_rows, rows, user_table, movie_table, batch_size=4, seed=5)

    first, second = epoch_rows(dataset), epoch_rows(dataset)
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(np.concatenate(first)) == list(range(10)) == sorted(np.concatenate(second))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))  # reshuffled each epoch
    again = rating_batches(user_rows, movie_rows, rows, user_table, movie_table, batch_size=4, seed=5)
    assert np.array_equal(np.concatenate(epoch_rows(again)), np.concatenate(first))  # same seed, same order

    (users, user_index, movies, movie_index), targets = next(iter(dataset))
    picked = targets.numpy()[:, 0].astype(int)
    assert len(users) == len(np.unique(user_rows[picked])) and len(movies) == len(np.unique(movie_rows[picked]))
    np.testing.assert_array_equal(users.numpy()[user_index.numpy()], user_table[user_rows[picked]])
    np.testing.assert_array_equal(movies.numpy()[movie_index.numpy()], movie_table[movie_rows[picked]])


def test_trainer_runs_towers_on_distinct_rows_but_answers_like_the_network_and_shares_its_weights():
    params = ContentParams(user_layers=[5], item_layers=[4], embedding_dim=3, seed=1)
    network = build_network(2, 3, params)
    trainer = build_trainer(network, learning_rate=0.1)
    rng = np.random.default_rng(0)
    user_table, movie_table = rng.normal(size=(4, 2)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    user_rows, movie_rows = np.array([0, 3, 0, 1, 3, 3]), np.array([4, 4, 0, 2, 1, 4])
    distinct_users, user_index = np.unique(user_rows, return_inverse=True)
    distinct_movies, movie_index = np.unique(movie_rows, return_inverse=True)
    inputs = (user_table[distinct_users], user_index.astype("int32"), movie_table[distinct_movies], movie_index.astype("int32"))

    def network_answer() -> np.ndarray:
        return network.predict([user_table[user_rows], movie_table[movie_rows]], verbose=0)

    np.testing.assert_allclose(trainer(inputs, training=False), network_answer(), rtol=1e-5)
    before = network_answer()
    trainer.train_on_batch(inputs, np.ones((6, 1), "float32"))
    assert not np.allclose(network_answer(), before)


def test_batches_without_a_seed_come_in_row_order():
    dataset = rating_batches(np.zeros(5, int), np.zeros(5, int), np.arange(5.0), np.zeros((1, 1)), np.zeros((1, 1)), 2, None)
    assert [b.tolist() for b in epoch_rows(dataset)] == [[0, 1], [2, 3], [4]]


def test_validation_split_is_a_seeded_partition():
    fit_rows, val_rows = validation_split(10, 0.3, seed=1)
    assert len(val_rows) == 3 and sorted([*fit_rows, *val_rows]) == list(range(10))
    again = validation_split(10, 0.3, seed=1)
    assert np.array_equal(again[1], val_rows) and not np.array_equal(validation_split(10, 0.3, seed=2)[1], val_rows)
    assert len(validation_split(10, 0.0, seed=1)[1]) == 0
    with pytest.raises(DataError, match="empty"):
        validation_split(3, 0.1, seed=1)


# ---- score block, recommend, cold start, similar --------------------------------------------


def test_score_block_equals_predict_over_the_whole_grid(tiny_model, tiny_data):
    users = np.array([int(tiny_data[0][USER].iloc[0]), UNKNOWN_ID, int(tiny_data[0][USER].iloc[-1])])
    block = tiny_model.score_block(users)
    grid = pd.DataFrame({USER: np.repeat(users, len(tiny_model.catalogue)), MOVIE: np.tile(tiny_model.catalogue.movie_ids, 3)})
    np.testing.assert_allclose(block.ravel(), tiny_model.predict(grid), rtol=1e-6)


def test_a_loaded_model_scores_known_and_unknown_users_from_saved_vectors_without_tensorflow(tiny_data, tmp_path: Path, monkeypatch):
    users = np.array([*np.unique(tiny_data[0][USER])[:4], UNKNOWN_ID])
    check_scores_from_saved_vectors(fit_tiny(tiny_data, epochs=1), "content", users, tmp_path, monkeypatch)


def test_genre_row_starts_from_the_no_history_user_and_sets_the_stated_genres(tiny_model, tiny_data):
    mean = tiny_data[0][RATING].mean()
    row = dict(zip(tiny_model.user_columns, tiny_model.genre_user_row({"adventure": 5, " Fantasy": 1.5}), strict=True))
    assert row["avg_Adventure"] == 5 and row["avg_Fantasy"] == 1.5
    assert row["n_ratings"] == 0
    others = [value for key, value in row.items() if key not in {"avg_Adventure", "avg_Fantasy", "n_ratings"}]
    np.testing.assert_allclose(others, mean)


@pytest.mark.parametrize(
    ("prefs", "message"),
    [
        ({"Adventure": 5, "Cartoons": 4}, "unknown genre.*'Cartoons'.*valid genres: Action, Adventure"),
        ({"Drama": 7}, "outside the rating range 0.5..5"),
        ({"Drama": float("nan")}, "outside the rating range"),
        ({}, "at least one genre"),
    ],
)
def test_bad_genre_preferences_are_clear_errors(tiny_model, prefs, message):
    with pytest.raises(RecsysError, match=message):
        tiny_model.recommend_for_genres(prefs, n=3)


def test_recommend_for_genres_lists_n_movies_best_first(tiny_model):
    recs = tiny_model.recommend_for_genres({"Comedy": 5}, n=4)
    assert list(recs.columns) == [MOVIE, TITLE, "score"] and len(recs) == 4
    assert recs["score"].is_monotonic_decreasing


def test_similar_ranks_other_movies_by_squared_embedding_distance(tiny_model):
    movie = int(tiny_model.catalogue.movie_ids[5])
    table = tiny_model.similar(movie, n=4)
    assert list(table.columns) == [MOVIE, TITLE, "distance"] and len(table) == 4
    assert movie not in set(table[MOVIE]) and table["distance"].is_monotonic_increasing
    embeddings = tiny_model.movie_embeddings().astype(np.float64)
    expected = ((embeddings - embeddings[5]) ** 2).sum(axis=1)
    expected[5] = np.inf
    np.testing.assert_allclose(table["distance"], np.sort(expected)[:4], rtol=1e-9)


def test_similar_to_an_unknown_movie_is_a_clear_error(tiny_model):
    with pytest.raises(RecsysError, match=f"movie {UNKNOWN_ID}"):
        tiny_model.similar(UNKNOWN_ID)


def test_load_from_an_empty_folder_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="content.keras"):
        ContentModel.load(tmp_path)


# ---- bad feature tables ---------------------------------------------------------------------


def with_users(data, users: pd.DataFrame):
    train, _, movies, features = data
    return train, dataclasses.replace(features, users=users), movies


def test_a_features_table_missing_a_column_is_a_data_error_naming_it(tiny_data):
    train, features, movies = with_users(tiny_data, tiny_data[3].users.drop(columns=["avg_Drama"]))
    with pytest.raises(DataError, match="features users: missing column.*avg_Drama"):
        ContentModel.fit(training_data(train, movies, features=features), TINY)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_a_features_table_is_a_data_error_naming_the_column(tiny_data, bad):
    users = tiny_data[3].users.copy()
    users.loc[users.index[[1, 3]], "avg_Comedy"] = bad
    train, features, movies = with_users(tiny_data, users)
    with pytest.raises(DataError, match="column 'avg_Comedy': 2 rows are NaN, infinite"):
        ContentModel.fit(training_data(train, movies, features=features), TINY)


def test_inf_in_the_movie_table_is_named_too(tiny_data):
    train, _, movies, features = tiny_data
    table = features.movies.astype({"year": "float64"})
    table.loc[0, "year"] = -np.inf
    with pytest.raises(DataError, match="features movies: column 'year': 1 row are NaN"):
        ContentModel.fit(training_data(train, movies, features=dataclasses.replace(features, movies=table)), TINY)


def test_columns_in_another_order_than_trained_are_a_data_error_naming_the_column(tiny_model, tiny_data):
    users = tiny_data[3].users
    swapped = users[[USER, "avg_rating", "n_ratings", *users.columns[3:]]]
    with pytest.raises(DataError, match="column 'n_ratings'.*trained with it at 0"):
        tiny_model.user_embeddings(swapped)
    train, features, movies = with_users(tiny_data, swapped)
    with pytest.raises(DataError, match="column 'n_ratings'"):
        ContentModel.fit(training_data(train, movies, features=features), TINY)


def test_feature_matrix_ignores_id_columns_and_keeps_the_trained_order():
    frame = pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": [3, 4]})
    np.testing.assert_array_equal(feature_matrix(frame, ["a", "b"], "t"), [[1.0, 3.0], [2.0, 4.0]])
    twice = pd.concat([frame, frame[["b"]]], axis=1)
    with pytest.raises(DataError, match="t: column.*b appear more than once"):
        feature_matrix(twice, ["a", "b"], "t")


# ---- quality on synthetic data with genre signal --------------------------------------------


def test_beats_the_bias_only_baseline_for_users_with_genre_tastes():
    synthetic = SyntheticParams(n_users=200, n_movies=500, n_ratings=20_000, min_user_ratings=20, seed=11)
    ratings, movies = generate(synthetic)
    train, test = split_rows(ratings, seed=1)
    params = ContentParams(
        user_layers=[32], item_layers=[32], embedding_dim=8, epochs=8, batch_size=256, validation_fraction=0.1, patience=2, seed=1
    )
    model = ContentModel.fit(training_data(train, movies, features=build_features(train, movies, 0.0)), params)
    baseline = BiasModel.fit(training_data(train, movies))

    spread = build_world(synthetic).taste.std(axis=1)  # users 1..n in id order
    strong = test[USER].isin(np.flatnonzero(spread > np.median(spread)) + 1).to_numpy()
    truth = test[RATING].to_numpy()

    def rmse(predicted: np.ndarray) -> float:
        return float(np.sqrt(np.mean((predicted[strong] - truth[strong]) ** 2)))

    assert rmse(model.predict(test)) < rmse(baseline.predict(test)) - 0.01

    # and stated genre tastes steer the cold-start list toward that genre
    horror = genre_matrix(movies.set_index(MOVIE).loc[model.catalogue.movie_ids, "genres"])[:, GENRE_VOCABULARY.index("Horror")]
    loves = model.recommend_for_genres({"Horror": 5}, n=30)
    hates = model.recommend_for_genres({"Horror": 0.5}, n=30)
    share = {name: horror[model.catalogue.index(recs[MOVIE].to_numpy())].mean() for name, recs in (("loves", loves), ("hates", hates))}
    assert share["loves"] > share["hates"]
