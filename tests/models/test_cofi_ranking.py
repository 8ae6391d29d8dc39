"""Collaborative filtering for ranking: the weighted cost by hand and against the dense formula, ALS
steps lowering it, CG against exact solves, the contract, planted structure popularity misses, new
users, every param mattering, determinism, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CofiRankingParams, parse_params
from pipeline.data.schema import GENRES, MOVIE, RATING, TIMESTAMP, TITLE, USER, YEAR
from pipeline.errors import ConfigError, DataError, ModelError
from pipeline.evaluation.metrics import evaluate_model
from pipeline.models.base import Catalogue, SeenItems
from pipeline.models.baselines import PopularityModel
from pipeline.models.cofi_ranking import (
    Cells,
    CofiRankingModel,
    dense_weighted_cost,
    interactions,
    layout,
    movie_matrix,
    regularization,
    solve_side,
    user_matrix,
    weighted_cost,
)
from tests.factories import tiny_movies, tiny_ratings, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract

RANGE = (0.5, 5.0)
# small and quick; every positive, constant confidence and a movie bias (the alternatives are tested below)
FAST = CofiRankingParams(
    num_features=4, iterations=8, lambda_=0.01, alpha=5.0, confidence="constant", positive_threshold=None, movie_bias=True
)


def ratings_frame(users, movies, values) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {
            USER: np.asarray(users, np.int64),
            MOVIE: np.asarray(movies, np.int64),
            RATING: np.asarray(values, float),
            TIMESTAMP: np.arange(n, dtype=np.int64),
        }
    )


def movies_frame(ids) -> pd.DataFrame:
    ids = np.asarray(ids, np.int64)
    return pd.DataFrame({MOVIE: ids, TITLE: [f"Movie {i}" for i in ids], YEAR: pd.array([2000] * len(ids), "Int64"), GENRES: "Drama"})


# ---- the cost ---------------------------------------------------------------------------------------


def test_the_weighted_cost_of_a_hand_worked_case():
    """Users 1, 2 and movies 10, 20, k = 1, no movie bias: U = [w, b] = [[1, 0], [0, 1]],
    V = [x, 1] = [[1, 1], [2, 1]], so s = [[1, 2], [1, 1]]. Positives (1, 10) and (2, 20) with
    c = 1 + 2 = 3 fit exactly; the other cells cost 1 x (0 - 2)^2 + 1 x (0 - 1)^2 = 5. Each row's
    confidences add up to 3 + 1 = 4, so lambda_r = 0.1 x 4 = 0.4, times |w|^2 = 1, 0 and |x|^2 = 1, 4:
    0.4 + 0 + 0.4 + 1.6 = 2.4. J = 7.4."""
    params = CofiRankingParams(
        num_features=1, lambda_=0.1, alpha=2.0, movie_bias=False, reg_exponent=1.0, confidence="constant", positive_threshold=None
    )
    data = interactions(ratings_frame([1, 2], [10, 20], [4.0, 3.0]), Catalogue.from_movies(movies_frame([10, 20])), params, "t")
    factors = {"W": np.array([[1.0], [0.0]]), "b": np.array([0.0, 1.0]), "X": np.array([[1.0], [2.0]])}
    U, V = user_matrix(factors), movie_matrix(factors)
    np.testing.assert_array_equal(U @ V.T, [[1, 2], [1, 1]])
    lambda_u, lambda_m = regularization(data.by_user, params), regularization(data.by_movie, params)
    np.testing.assert_allclose([lambda_u, lambda_m], [[0.4, 0.4], [0.4, 0.4]])
    penalized = layout(1, False)["penalized"]
    assert weighted_cost(U, V, data.by_user, lambda_u, lambda_m, penalized) == pytest.approx(7.4, rel=1e-12)


def random_problem(seed: int, movie_bias: bool, n_users: int = 7, n_movies: int = 9, k: int = 3, confidence: str = "rating"):
    rng = np.random.default_rng(seed)
    rated = rng.random((n_users, n_movies)) < 0.35
    rated[np.arange(n_users), np.arange(n_users) % n_movies] = True  # every user has a rating
    users, movies = np.nonzero(rated)
    values = rng.integers(1, 11, len(users)) / 2.0
    params = CofiRankingParams(
        num_features=k, lambda_=0.3, alpha=1.7, reg_exponent=0.6, movie_bias=movie_bias, confidence=confidence, positive_threshold=2.0
    )
    train = ratings_frame(users + 1, movies + 1, values)
    data = interactions(train, Catalogue.from_movies(movies_frame(np.arange(1, n_movies + 1))), params, "t")
    factors = {"W": rng.normal(size=(n_users, k)), "b": rng.normal(size=n_users), "X": rng.normal(size=(n_movies, k))}
    if movie_bias:
        factors["c"] = rng.normal(size=n_movies)
    P, C = np.zeros((n_users, n_movies)), np.ones((n_users, n_movies))
    positive = values >= 2.0
    P[users[positive], movies[positive]] = 1.0
    C[users[positive], movies[positive]] = 1.0 + 1.7 * values[positive]
    return params, data, user_matrix(factors), movie_matrix(factors), P, C


@pytest.mark.parametrize("movie_bias", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_gramian_cost_equals_the_dense_formula_on_random_data(seed, movie_bias):
    params, data, U, V, P, C = random_problem(seed, movie_bias)
    lambda_u, lambda_m = regularization(data.by_user, params), regularization(data.by_movie, params)
    np.testing.assert_allclose(lambda_u, 0.3 * C.sum(axis=1) ** 0.6)  # the rows' total confidence
    np.testing.assert_allclose(lambda_m, 0.3 * C.sum(axis=0) ** 0.6)
    penalized = layout(params.num_features, movie_bias)["penalized"]
    sparse_j = weighted_cost(U, V, data.by_user, lambda_u, lambda_m, penalized)
    assert sparse_j == pytest.approx(dense_weighted_cost(U, V, P, C, lambda_u, lambda_m, penalized), rel=1e-12)


# ---- ALS steps --------------------------------------------------------------------------------------


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (f(plus) - f(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("movie_bias", [False, True])
def test_an_exact_half_step_zeroes_the_cost_gradient_of_its_side(movie_bias):
    """The exact solve is the minimizer: finite differences of the dense J in the solved columns vanish,
    and the columns held at 1 stay 1."""
    params, data, U, V, P, C = random_problem(3, movie_bias)
    lambda_u, lambda_m = regularization(data.by_user, params), regularization(data.by_movie, params)
    masks = layout(params.num_features, movie_bias)
    for side in ("users", "movies"):
        if side == "users":
            solved = solve_side(U, V, data.by_user, masks["user_free"], masks["penalized"], lambda_u, 0)
            free, J = masks["user_free"], lambda A: dense_weighted_cost(A, V, P, C, lambda_u, lambda_m, masks["penalized"])
            before = U
        else:
            solved = solve_side(V, U, data.by_movie, masks["movie_free"], masks["penalized"], lambda_m, 0)
            free, J = masks["movie_free"], lambda A: dense_weighted_cost(U, A, P, C, lambda_u, lambda_m, masks["penalized"])
            before = V
        np.testing.assert_array_equal(solved[:, ~free], before[:, ~free])
        assert J(solved) < J(before)
        np.testing.assert_allclose(numeric_gradient(J, solved)[:, free], 0.0, atol=1e-5)


def test_conjugate_gradient_converges_to_the_exact_solve():
    params, data, U, V, _, _ = random_problem(4, True)
    lambda_u = regularization(data.by_user, params)
    masks = layout(params.num_features, True)
    exact = solve_side(U, V, data.by_user, masks["user_free"], masks["penalized"], lambda_u, 0)
    few = solve_side(U, V, data.by_user, masks["user_free"], masks["penalized"], lambda_u, 1)
    many = solve_side(U, V, data.by_user, masks["user_free"], masks["penalized"], lambda_u, 12)
    assert np.abs(few - exact).max() > 1e-3  # one step is not the solution
    np.testing.assert_allclose(many, exact, atol=1e-4)  # the per-positive dots are float32


@pytest.fixture(scope="module")
def low_rank() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 users x 40 movies (ids from 10), rank-2 preferences: a user rates the movies it likes best."""
    rng = np.random.default_rng(0)
    taste = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 40)) + rng.normal(0, 0.3, (30, 40))
    users, movies = np.nonzero(taste > np.quantile(taste, 0.7))
    values = np.clip(np.round(3 + taste[users, movies]), 1, 5)
    return ratings_frame(users + 10, movies + 10, values), movies_frame(np.arange(10, 52))  # 2 movies nobody rated


@pytest.mark.parametrize("cg_steps", [0, 3])
def test_the_cost_never_rises_from_one_iteration_to_the_next(low_rank, cg_steps):
    params = FAST.model_copy(update={"cg_steps": cg_steps, "iterations": 12})
    cost = np.array(CofiRankingModel.fit(training_data(*low_rank), params).history.cost)
    assert len(cost) == 12
    assert (np.diff(cost) <= 1e-9 * cost[:-1]).all()
    assert cost[-1] < 0.9 * cost[0]


def test_the_recorded_cost_is_the_dense_cost_of_the_final_factors(low_rank):
    train, movies = low_rank
    model = CofiRankingModel.fit(training_data(train, movies), FAST)
    catalogue = Catalogue.from_movies(movies)
    data = interactions(train, catalogue, FAST, "t")
    U, V = user_matrix(model.factors), movie_matrix(model.factors)
    P = np.zeros((len(data.user_ids), len(catalogue)))
    P[data.by_user.rows, data.by_user.indices] = 1.0
    C = 1.0 + P * FAST.alpha
    penalized = layout(FAST.num_features, True)["penalized"]
    dense = dense_weighted_cost(U, V, P, C, regularization(data.by_user, FAST), regularization(data.by_movie, FAST), penalized)
    assert model.history.cost[-1] == pytest.approx(dense, rel=1e-10)


# ---- what it learns ---------------------------------------------------------------------------------


def planted() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two tastes: users 1-15 watch only movies 101-120, users 16-45 only movies 201-220, each about 60%
    of their group's movies, all rated 5. The 201-220 movies are twice as popular, so popularity
    recommends them to everyone; 20% of the cells are held out as test."""
    rng = np.random.default_rng(7)
    users, movies = [], []
    for group_users, group_movies in ((np.arange(1, 16), np.arange(101, 121)), (np.arange(16, 46), np.arange(201, 221))):
        for user in group_users:
            picks = group_movies[rng.random(len(group_movies)) < 0.6]
            users += [user] * len(picks)
            movies += list(picks)
    frame = ratings_frame(users, movies, np.full(len(users), 5.0))
    test_rows = rng.random(len(frame)) < 0.2
    return frame[~test_rows].reset_index(drop=True), frame[test_rows].reset_index(drop=True), movies_frame(np.r_[101:121, 201:221])


def test_planted_tastes_are_recovered_where_popularity_misses():
    train, test, movies = planted()
    minority = test[test[USER] <= 15]  # the users whose taste is not the popular one
    ranking = CofiRankingModel.fit(training_data(train, movies), FAST.model_copy(update={"iterations": 10}))
    popularity = PopularityModel.fit(training_data(train, movies))
    seen = SeenItems.from_ratings(train, ranking.catalogue)
    settings = {"k": 5, "relevance_threshold": 4.0, "cold_threshold": 1}
    ours, _ = evaluate_model(ranking, train, minority, seen, **settings)
    theirs, _ = evaluate_model(popularity, train, minority, seen, **settings)
    assert theirs["ndcg_at_k"] < 0.05
    assert ours["ndcg_at_k"] > 0.25  # which unseen movies of their group are held out is random
    lists = pd.concat([ranking.recommend(user, n=5) for user in range(1, 16)])
    assert lists[MOVIE].between(101, 120).mean() > 0.95  # but the group is found


# ---- the model contract -----------------------------------------------------------------------------


class TestCofiRankingContract(ModelContract):
    predicts_ratings = False

    @pytest.fixture(scope="class")
    def train(self) -> pd.DataFrame:
        return tiny_ratings()

    @pytest.fixture(scope="class")
    def movies(self) -> pd.DataFrame:
        return tiny_movies()

    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: CofiRankingModel.fit(training_data(train, movies), FAST)

    @pytest.fixture(scope="class")
    def model(self, fit):
        return fit()


@pytest.fixture(scope="module")
def model(low_rank) -> CofiRankingModel:
    return CofiRankingModel.fit(training_data(*low_rank), FAST)


def test_predict_returns_the_scores_of_score_block_with_documented_fallbacks(low_rank, model):
    train = low_rank[0]
    user, other = int(train[USER].iloc[0]), int(train[USER].iloc[-1])
    pairs = pd.DataFrame({USER: [user, other, UNKNOWN_ID, user], MOVIE: [10, 51, 10, UNKNOWN_ID]})
    block = model.score_block(np.array([user, other, UNKNOWN_ID]))
    column = model.catalogue.index(np.array([10, 51]))
    expected = [block[0, column[0]], block[1, column[1]], block[2, column[0]], 0.0]
    np.testing.assert_allclose(model.predict(pairs), expected, rtol=1e-12)
    np.testing.assert_allclose(block[2], model.factors["c"])  # an unknown user: w = 0, b = 0
    assert model.predicts_ratings is False


def test_the_same_seed_gives_identical_scores_and_another_seed_other_scores(low_rank):
    users = np.unique(low_rank[0][USER])
    first, second = (CofiRankingModel.fit(training_data(*low_rank), FAST).score_block(users) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    other = CofiRankingModel.fit(training_data(*low_rank), FAST.model_copy(update={"seed": 99})).score_block(users)
    assert not np.allclose(first, other)


ALTERNATIVES = {
    "num_features": 3,
    "lambda_": 0.2,
    "reg_exponent": 0.0,
    "alpha": 1.0,
    "confidence": "rating",
    "positive_threshold": 4.5,
    "iterations": 3,
    "cg_steps": 0,
    "movie_bias": False,
    "init_scale": 1.0,
    "seed": 7,
}


def test_every_param_is_tested_below():
    assert set(ALTERNATIVES) == set(CofiRankingParams.model_fields)


@pytest.mark.parametrize("key", sorted(ALTERNATIVES))
def test_every_param_changes_the_scores(low_rank, key):
    changed = CofiRankingParams.model_validate({**FAST.model_dump(), key: ALTERNATIVES[key]})
    assert changed != FAST
    users = np.unique(low_rank[0][USER])
    before, after = (CofiRankingModel.fit(training_data(*low_rank), p).score_block(users) for p in (FAST, changed))
    assert before.shape != after.shape or not np.allclose(before, after), f"cofi_ranking.{key} has no effect"


# ---- a new user -------------------------------------------------------------------------------------


def test_a_new_user_is_the_exact_minimizer_of_the_cost_with_the_movies_fixed(model):
    ratings = {10: 5.0, 11: 4.0, 12: 1.0, 13: 4.5}
    w, b = model.fit_new_user(ratings)
    V = movie_matrix(model.factors)
    column = model.catalogue.index(np.array(list(ratings)))
    p, c = np.zeros(len(V)), np.ones(len(V))
    p[column], c[column] = 1.0, 1.0 + FAST.alpha  # every rating is a positive (no threshold)
    lam = FAST.lambda_ * c.sum() ** FAST.reg_exponent
    k = FAST.num_features

    def J(x: np.ndarray) -> float:
        s = V @ np.r_[x[:k], x[k], 1.0]
        return float(np.sum(c * (p - s) ** 2) + lam * np.sum(x[:k] ** 2))

    np.testing.assert_allclose(numeric_gradient(J, np.r_[w, b]), 0.0, atol=1e-6)


def test_new_user_recommendations_exclude_the_rated_movies_and_follow_the_ratings(model):
    loved = {10: 5.0, 11: 5.0}
    recs = model.recommend_for_ratings(loved, n=5)
    assert list(recs.columns) == [MOVIE, TITLE, "score"] and len(recs) == 5
    assert not set(loved) & set(recs[MOVIE])
    assert recs["score"].is_monotonic_decreasing
    assert not recs.equals(model.recommend_for_ratings({30: 5.0, 31: 5.0}, n=5))


def test_new_user_ratings_of_unknown_movies_or_out_of_range_are_clear_errors(model):
    with pytest.raises(DataError, match=f"not in the catalogue.*{UNKNOWN_ID}"):
        model.recommend_for_ratings({UNKNOWN_ID: 4.0})
    with pytest.raises(DataError, match="outside the rating range"):
        model.recommend_for_ratings({10: 9.0})


# ---- persistence ------------------------------------------------------------------------------------


def test_save_load_keeps_params_history_and_scores(tmp_path, model, low_rank):
    model.save(tmp_path)
    loaded = CofiRankingModel.load(tmp_path)
    users = np.unique(low_rank[0][USER])
    assert loaded.params == model.params and loaded.history.cost == model.history.cost
    np.testing.assert_array_equal(loaded.score_block(users), model.score_block(users))
    pd.testing.assert_frame_equal(loaded.recommend_for_ratings({10: 5.0}), model.recommend_for_ratings({10: 5.0}))


def test_load_of_a_missing_or_foreign_folder_is_a_model_error(tmp_path, model):
    with pytest.raises(ModelError, match="not found"):
        CofiRankingModel.load(tmp_path)
    model.save(tmp_path)
    (tmp_path / "cofi_ranking.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ModelError, match="not a cofi-ranking-1 model"):
        CofiRankingModel.load(tmp_path)


# ---- bad input and params ---------------------------------------------------------------------------


def test_a_train_split_without_any_positive_is_a_clear_data_error(low_rank):
    params = FAST.model_copy(update={"positive_threshold": 5.5})
    with pytest.raises(
        DataError, match=r"train.parquet: no positive interaction .* cofi_ranking.positive_threshold 5.5 \(highest rating 5\); no model"
    ):
        CofiRankingModel.fit(training_data(*low_rank, source="train.parquet"), params)


def test_empty_nan_or_unknown_movies_in_train_are_clear_data_errors(low_rank):
    train, movies = low_rank
    with pytest.raises(DataError, match="no ratings"):
        CofiRankingModel.fit(training_data(train.iloc[:0], movies), FAST)
    broken = train.copy()
    broken.loc[[1, 2], RATING] = np.nan
    with pytest.raises(DataError, match="column 'rating': 2 rows are not finite"):
        CofiRankingModel.fit(training_data(broken, movies), FAST)
    with pytest.raises(DataError, match="column 'movie_id'.*missing from the movies table"):
        CofiRankingModel.fit(training_data(train, movies.iloc[5:]), FAST)


def test_a_diverging_cost_stops_training_with_a_message(low_rank, monkeypatch):
    import pipeline.models.cofi_ranking as module

    monkeypatch.setattr(module, "weighted_cost", lambda *args: float("nan"))
    with pytest.raises(ModelError, match="cost became nan at iteration 0"):
        CofiRankingModel.fit(training_data(*low_rank), FAST)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_features", 0),
        ("lambda_", -0.1),
        ("reg_exponent", 1.5),
        ("alpha", -1.0),
        ("confidence", "log"),
        ("positive_threshold", "nan"),
        ("iterations", 0),
        ("cg_steps", -1),
        ("init_scale", 0.0),
        ("movie_bias", "maybe"),
        ("unknown", 1),
    ],
)
def test_ranking_params_out_of_range_are_rejected_with_the_key_named(key, value):
    with pytest.raises(ConfigError, match=rf"cofi_ranking\.{key}"):
        parse_params({"cofi_ranking": {key: value}})


def test_cells_total_confidence_counts_every_cell_of_a_row():
    cells = Cells(np.array([0, 2, 2, 3]), np.array([0, 3, 1]), np.array([2.0, 0.5, 4.0]), n_cols=5)
    np.testing.assert_allclose(cells.row_totals(), [5 + 2.5, 5, 5 + 4])
    np.testing.assert_array_equal(cells.rows, [0, 0, 2])


# ---- real MovieLens ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_on_ml_latest_small_the_default_model_reaches_the_floors_and_ease(shared_datasets):
    """Project defaults on ml-latest-small's 80/20 split (train_test_split, 0.2, seed 42), the evaluate
    stage's protocol: nDCG@10 >= 0.27, coverage >= 0.05, and at least EASE's nDCG@10 measured beside it."""
    from pipeline.config import Params
    from pipeline.data.movielens import read_csv_release
    from pipeline.models.ease import EaseModel
    from pipeline.split import split_ratings

    ratings, movies = read_csv_release(shared_datasets / "ml-latest-small")
    train, test = split_ratings(ratings, "random", 0.2, 42)
    params, data = Params(), training_data(train, movies)

    def scored(model):
        seen = SeenItems.from_ratings(train, model.catalogue)
        return evaluate_model(model, train, test, seen, k=10, relevance_threshold=4.0, cold_threshold=5)[0]

    ranking = scored(CofiRankingModel.fit(data, params.cofi_ranking, progress=False))
    ease, popularity = scored(EaseModel.fit(data, params.evaluate.ease)), scored(PopularityModel.fit(data))
    assert ranking["n_ranked_users"] == 599
    assert ranking["ndcg_at_k"] >= 0.27 and ranking["coverage"] >= 0.05
    assert ranking["ndcg_at_k"] >= ease["ndcg_at_k"] > popularity["ndcg_at_k"]
