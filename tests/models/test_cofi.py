"""Collaborative filtering: the course's cost by hand, sparse == dense, gradients (by hand, by
finite differences, by GradientTape), Keras's Adam in NumPy, the two Adam engines agreeing, the model
contract, fallbacks, new users, every param mattering, bad input, and a win over a bias-only baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.model_selection import train_test_split

from pipeline.config import COURSE_COFI, CofiParams, SyntheticParams, parse_params
from pipeline.data.schema import MOVIE, RATING, TITLE, USER, RatingScale
from pipeline.errors import ConfigError, DataError, ModelError, RecsysError
from pipeline.models.base import index_of
from pipeline.models.cofi import Adam, Batch, CofiModel, cofi_cost, encode, movie_means, sparse_cost, sparse_gradients, validation_mask
from tests.factories import SCALE, low_rank_ratings, training_data
from tests.models.contract import UNKNOWN_ID, ModelContract

# small and quick: every fit in this file takes a fraction of a second
FAST = CofiParams(num_features=4, iterations=15, lambda_=0.05)


@pytest.fixture(scope="module")
def tiny() -> tuple[pd.DataFrame, pd.DataFrame]:
    return low_rank_ratings()


# ---- the course's cost ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b", "y", "r", "lambda_", "expected"),
    [(0, 0, 0, 2, 27.0), (1, 1, 1, 0, 90.0), (1, 0, 1, 0, 160.0), (1, 1, 1, 1, 103.5)],
)
def test_dense_cost_matches_the_hand_worked_values(b, y, r, lambda_, expected):
    X, W = np.ones((5, 3)), np.ones((4, 3))
    B, Y, R = np.full((1, 4), b, float), np.full((5, 4), y, float), np.full((5, 4), r, float)
    assert cofi_cost(X, W, B, Y, R, lambda_) == pytest.approx(expected)


def test_dense_cost_matches_the_course_lab_values(shared_datasets):
    """The course lab: 5 movies x 4 users x 3 features of its arrays give 13.67, with lambda 1.5 28.09."""
    lab = shared_datasets / "lab-c3w2" / "cofi"
    if not lab.is_dir():
        pytest.skip("course lab arrays absent")
    load = lambda name: np.loadtxt(lab / f"small_movies_{name}.csv", delimiter=",", ndmin=2)  # noqa: E731
    X, W, b, Y, R = (load(n) for n in "XWbYR")
    X, W, b, Y, R = X[:5, :3], W[:4, :3], b[:, :4], Y[:5, :4], R[:5, :4]
    assert cofi_cost(X, W, b, Y, R, 0) == pytest.approx(13.67, abs=0.005)
    assert cofi_cost(X, W, b, Y, R, 1.5) == pytest.approx(28.09, abs=0.005)


def random_problem(seed: int = 3, n_movies: int = 6, n_users: int = 5, k: int = 3):
    rng = np.random.default_rng(seed)
    X, W, b = rng.normal(size=(n_movies, k)), rng.normal(size=(n_users, k)), rng.normal(size=n_users)
    Y = rng.normal(size=(n_movies, n_users))
    R = (rng.random((n_movies, n_users)) < 0.5).astype(float)
    movie_idx, user_idx = np.nonzero(R)
    return X, W, b, Y, R, movie_idx.astype(np.int32), user_idx.astype(np.int32)


def dense_mean_cost(X, W, b, Y, R, lambda_):
    """The `cost: mean` formula written densely: each observed pair carries |x_i|^2 + |w_j|^2."""
    errors = (X @ W.T + b[None, :] - Y) * R
    penalty = (R * ((X**2).sum(1)[:, None] + (W**2).sum(1)[None, :])).sum()
    return (np.sum(errors**2) + lambda_ * penalty) / (2 * R.sum())


@pytest.mark.parametrize("lambda_", [0.0, 1.3])
def test_sparse_cost_equals_the_dense_cost_on_random_data(lambda_):
    X, W, b, Y, R, mi, ui = random_problem()
    y = Y[mi, ui]
    sparse = sparse_cost(X, W, b, mi, ui, y, lambda_).numpy()
    assert sparse == pytest.approx(cofi_cost(X, W, b[None, :], Y, R, lambda_), rel=1e-12)
    mean = sparse_cost(X, W, b, mi, ui, y, lambda_, cost="mean", n_total=len(y)).numpy()
    assert mean == pytest.approx(dense_mean_cost(X, W, b, Y, R, lambda_), rel=1e-12)


def gradient_problem():
    """The random problem's factors {X, W, b, c} and its observed pairs (movie_idx, user_idx, y)."""
    X, W, b, Y, _R, mi, ui = random_problem(seed=5)
    y, c = Y[mi, ui], np.random.default_rng(1).normal(size=len(X))
    return {"X": X, "W": W, "b": b, "c": c}, (mi, ui, y)


def central_differences(J, factors, eps=1e-6):
    """(J(f + eps) - J(f - eps)) / 2 eps of the scalar J(factors) in every entry of every factor."""
    numeric = {}
    for name, array in factors.items():
        numeric[name] = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            plus, minus = ({**factors, name: array.copy()} for _ in range(2))
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric[name][index] = (J(plus) - J(minus)) / (2 * eps)
    return numeric


@pytest.mark.parametrize("cost", ["sum", "mean"])
def test_gradients_match_finite_differences(cost):
    factors, (mi, ui, y) = gradient_problem()

    def J(f):
        return sparse_cost(f["X"], f["W"], f["b"], mi, ui, y, 0.7, f["c"], cost=cost, n_total=len(y))

    values = {name: tf.Variable(array) for name, array in factors.items()}
    with tf.GradientTape() as tape:
        total = J(values)
    taped = tape.gradient(total, list(values.values()))
    numeric = central_differences(lambda f: J(f).numpy(), factors)
    for name, gradient in zip(values, taped, strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), numeric[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cost", ["sum", "mean"])
def test_written_out_gradients_match_finite_differences(cost):
    factors, (mi, ui, y) = gradient_problem()

    def J(values):
        return sparse_gradients(values, Batch(mi, ui, y, 1.0), 0.7, cost, n_total=len(y))

    _, analytic = J(factors)
    numeric = central_differences(lambda f: J(f)[0], factors)
    for name in factors:
        np.testing.assert_allclose(analytic[name], numeric[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cost", ["sum", "mean"])
@pytest.mark.parametrize("share", [1.0, 0.25])
def test_written_out_cost_and_gradients_equal_gradient_tape(cost, share):
    factors, (mi, ui, y) = gradient_problem()
    value, analytic = sparse_gradients(factors, Batch(mi, ui, y, share), 0.7, cost, n_total=len(y))
    variables = {name: tf.Variable(array) for name, array in factors.items()}
    with tf.GradientTape() as tape:
        total = sparse_cost(variables["X"], variables["W"], variables["b"], mi, ui, y, 0.7, variables["c"], cost, share, len(y))
    taped = tape.gradient(total, list(variables.values()))
    assert value == pytest.approx(total.numpy(), rel=1e-12)
    for name, gradient in zip(variables, taped, strict=True):
        np.testing.assert_allclose(analytic[name], tf.convert_to_tensor(gradient).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_adam_takes_keras_adam_steps(dtype):
    import keras

    rng = np.random.default_rng(0)
    start = rng.normal(size=6).astype(dtype)
    variable, values = tf.Variable(start.copy()), {"x": start.copy()}
    keras_adam, numpy_adam = keras.optimizers.Adam(learning_rate=0.03), Adam(values, 0.03)
    keras_adam.build([variable])
    for step in range(5):
        gradient = (rng.normal(size=6) * 10.0 ** rng.integers(-6, 2, size=6)).astype(dtype)
        keras_adam.apply_gradients([(tf.constant(gradient), variable)])
        numpy_adam.apply(values, {"x": gradient})
        tolerance = 0 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(values["x"], variable.numpy(), rtol=tolerance, atol=tolerance, err_msg=f"step {step}")


ENGINE_SETUPS = {
    "full batch": {},
    "sum cost, float64": {"cost": "sum", "dtype": "float64"},
    "movie bias": {"movie_bias": True, "dtype": "float64"},
    "mini-batches, validation": {"batch_size": 64, "validation_fraction": 0.2, "patience": 3},
}


@pytest.mark.parametrize("update", ENGINE_SETUPS.values(), ids=ENGINE_SETUPS)
def test_the_numpy_and_tensorflow_engines_take_the_same_steps(tiny, update):
    """Same initial values, gradient and Adam: float64 to rounding, float32 to its precision."""
    params = FAST.model_copy(update=update)
    numpy, tensorflow = (CofiModel.fit(training_data(*tiny), params.model_copy(update={"engine": e})) for e in ("numpy", "tensorflow"))
    exact = params.dtype == "float64"
    assert numpy.history.iterations_run == tensorflow.history.iterations_run
    np.testing.assert_allclose(numpy.history.cost, tensorflow.history.cost, rtol=1e-12 if exact else 1e-5)
    for name, value in tensorflow.factors.items():
        np.testing.assert_allclose(numpy.factors[name], value, rtol=0, atol=1e-12 if exact else 1e-4, err_msg=name)


def test_the_numpy_engine_never_imports_tensorflow():
    code = (
        "import sys\n"
        "from pipeline.models.cofi import CofiModel\n"
        "from pipeline.config import CofiParams\n"
        "from tests.factories import low_rank_ratings, training_data\n"
        "CofiModel.fit(training_data(*low_rank_ratings()), CofiParams(num_features=3, iterations=2))\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert done.stdout.strip() == "[]"


# ---- the model contract ---------------------------------------------------------------------------


class TestCofiContract(ModelContract):
    @pytest.fixture(scope="class")
    def data(self):
        return low_rank_ratings()

    @pytest.fixture(scope="class")
    def train(self, data):
        return data[0]

    @pytest.fixture(scope="class")
    def movies(self, data):
        return data[1]

    @pytest.fixture(scope="class")
    def fit(self, train, movies):
        return lambda: CofiModel.fit(training_data(train, movies), FAST)

    @pytest.fixture(scope="class")
    def model(self, fit):
        return fit()


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_mini_batches_and_validation_are_deterministic_too(tiny, engine):
    params = FAST.model_copy(update={"batch_size": 64, "validation_fraction": 0.2, "patience": 2, "engine": engine})
    first, second = (CofiModel.fit(training_data(*tiny), params) for _ in range(2))
    assert first.history.cost == second.history.cost
    np.testing.assert_array_equal(first.factors["X"], second.factors["X"])


# ---- training --------------------------------------------------------------------------------------


def test_the_cost_goes_down(tiny):
    for params in (FAST, FAST.model_copy(update={"cost": "sum", "dtype": "float64"})):
        cost = np.array(CofiModel.fit(training_data(*tiny), params).history.cost)
        assert len(cost) == params.iterations
        assert cost[-1] < 0.5 * cost[0]
        assert (np.diff(cost) < 0).mean() > 0.8


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_full_batch_in_chunks_takes_the_same_steps_as_one_batch(tiny, monkeypatch, engine):
    import pipeline.models.cofi as cofi

    params = FAST.model_copy(update={"dtype": "float64", "engine": engine})
    whole = CofiModel.fit(training_data(*tiny), params)
    monkeypatch.setattr(cofi, "CHUNK", 100)  # ~600 ratings -> 6 chunks, gradients summed
    chunked = CofiModel.fit(training_data(*tiny), params)
    np.testing.assert_allclose(chunked.history.cost, whole.history.cost, rtol=1e-9)
    np.testing.assert_allclose(chunked.factors["X"], whole.factors["X"], rtol=1e-6, atol=1e-9)


def test_predictions_in_chunks_equal_the_per_pair_formula(tiny, plain, monkeypatch):
    import pipeline.models.cofi as cofi

    pairs = tiny[0][[USER, MOVIE]]
    monkeypatch.setattr(cofi, "CHUNK", 7)  # ~600 pairs -> ~90 chunks, the last one partial
    chunked = plain.predict(pairs)
    movie = np.searchsorted(plain.movie_ids, pairs[MOVIE].to_numpy())
    user = np.searchsorted(plain.user_ids, pairs[USER].to_numpy())
    X, W, b = plain.factors["X"].astype(np.float64), plain.factors["W"].astype(np.float64), plain.factors["b"]
    by_hand = np.clip((X[movie] * W[user]).sum(axis=1) + b[user] + plain.means[movie], *SCALE.bounds)
    np.testing.assert_allclose(chunked, by_hand, rtol=1e-12)


def test_mini_batches_are_built_one_at_a_time(tiny, monkeypatch):
    """A pass streams its mini-batches: never all of them in memory at once."""
    import pipeline.models.cofi as cofi

    built, alive = [], []
    real_step = cofi._NumpyTrainer.step

    def step(self, batch):
        alive.append(len(built))
        return real_step(self, batch)

    real_batches = cofi._batches

    def batches(n, params, rng):
        for rows in real_batches(n, params, rng):
            built.append(len(rows))
            yield rows

    monkeypatch.setattr(cofi, "_batches", batches)
    monkeypatch.setattr(cofi._NumpyTrainer, "step", step)
    params = FAST.model_copy(update={"batch_size": 100, "iterations": 1})
    CofiModel.fit(training_data(*tiny), params)
    assert len(alive) == len(built) > 3
    assert alive == list(range(1, len(built) + 1))  # batch i ran before batch i + 1 was made


def test_course_setup_is_reachable_and_is_the_course_formula(tiny):
    """COURSE_COFI trains the course's summed cost: the first logged cost is J at the initial values."""
    params = COURSE_COFI.model_copy(update={"iterations": 2})
    model = CofiModel.fit(training_data(*tiny), params)
    data = encode(tiny[0])
    means, _ = movie_means(data.movie_idx, data.ratings, len(data.movie_ids), 0.0)
    rng = np.random.default_rng([params.seed, 0])
    X, W = rng.standard_normal((len(data.movie_ids), 100)), rng.standard_normal((len(data.user_ids), 100))
    b = rng.standard_normal(len(data.user_ids))
    Y = np.zeros((len(data.movie_ids), len(data.user_ids)))
    R = np.zeros_like(Y)
    Y[data.movie_idx, data.user_idx] = data.ratings - means[data.movie_idx]
    R[data.movie_idx, data.user_idx] = 1
    assert model.history.cost[0] == pytest.approx(cofi_cost(X, W, b[None, :], Y, R, 1.0), rel=1e-10)


ALTERNATIVES = {
    "num_features": 3,
    "lambda_": 0.5,
    "learning_rate": 0.03,
    "iterations": 10,
    "seed": 7,
    "cost": "sum",
    "init_scale": 0.5,
    "mean_shrinkage": 0.0,
    "movie_bias": True,
    "dtype": "float64",
    "batch_size": 100,
    "validation_fraction": 0.3,
    "patience": 1,
}


def fingerprint(model: CofiModel, pairs: pd.DataFrame) -> tuple[np.ndarray, int]:
    return model.predict(pairs), model.history.iterations_run


# engine selects the trainer: numpy and tensorflow take the same steps (above); tests/models/test_cofi_spark.py
# checks that engine=spark trains another model and that log_cost_every adds its cost checkpoints.
ENGINE_PARAMS = {"engine", "log_cost_every"}


def test_every_param_is_tested_below():
    assert set(ALTERNATIVES) | ENGINE_PARAMS == set(CofiParams.model_fields)


@pytest.mark.parametrize("key", sorted(ALTERNATIVES))
def test_every_param_changes_the_result(tiny, key):
    # patience only acts with a validation slice: compare against that setup
    base = FAST.model_copy(update={"validation_fraction": 0.3, "iterations": 40, "lambda_": 0.0} if key == "patience" else {})
    changed = CofiParams.model_validate({**base.model_dump(), key: ALTERNATIVES[key]})
    assert changed != base
    pairs = tiny[0][[USER, MOVIE]]
    before, after = (fingerprint(CofiModel.fit(training_data(*tiny), p), pairs) for p in (base, changed))
    assert before[1] != after[1] or not np.array_equal(before[0], after[0]), f"cofi.{key} has no effect"


def test_early_stopping_restores_the_best_iteration(tiny):
    params = FAST.model_copy(update={"validation_fraction": 0.3, "patience": 2, "iterations": 200, "lambda_": 0.0, "num_features": 8})
    history = CofiModel.fit(training_data(*tiny), params).history
    assert history.iterations_run < 200
    assert history.best_iteration == int(np.argmin(history.validation_rmse))
    assert history.iterations_run == history.best_iteration + 1 + 2


def test_validation_slice_keeps_every_user_and_movie_in_training(tiny):
    data = encode(tiny[0])
    held = validation_mask(data, 0.5, np.random.default_rng(0))
    assert 0 < held.sum() < len(held)
    assert set(data.user_idx[~held]) == set(range(len(data.user_ids)))
    assert set(data.movie_idx[~held]) == set(range(len(data.movie_ids)))


def test_beats_a_bias_only_baseline_on_the_synthetic_default():
    from pipeline.data.synthetic import generate

    ratings, movies = generate(SyntheticParams())
    train, test = train_test_split(ratings, test_size=0.2, random_state=0)
    model = CofiModel.fit(training_data(train, movies), CofiParams(iterations=20))
    cofi_rmse = rmse(model.predict(test), test)
    assert cofi_rmse < bias_baseline_rmse(train, test) - 0.01


def rmse(predicted: np.ndarray, test: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean((predicted - test[RATING].to_numpy()) ** 2)))


def bias_baseline_rmse(train: pd.DataFrame, test: pd.DataFrame, reg_user: float = 15, reg_movie: float = 10) -> float:
    """Global mean + regularized user and movie biases (alternating closed-form ridge, Surprise's defaults)."""
    g = train[RATING].mean()
    users, ui = np.unique(train[USER], return_inverse=True)
    movies, mi = np.unique(train[MOVIE], return_inverse=True)
    r = train[RATING].to_numpy() - g
    bu, bm = np.zeros(len(users)), np.zeros(len(movies))
    for _ in range(10):
        bu = np.bincount(ui, r - bm[mi], len(users)) / (np.bincount(ui, minlength=len(users)) + reg_user)
        bm = np.bincount(mi, r - bu[ui], len(movies)) / (np.bincount(mi, minlength=len(movies)) + reg_movie)
    lookup_u = pd.Series(bu, users).reindex(test[USER]).fillna(0).to_numpy()
    lookup_m = pd.Series(bm, movies).reindex(test[MOVIE]).fillna(0).to_numpy()
    return rmse(np.clip(g + lookup_u + lookup_m, *SCALE.bounds), test)


# ---- predictions and fallbacks ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tiny) -> CofiModel:
    """Plain movie means (no shrinkage), so fallbacks can be checked by hand."""
    return CofiModel.fit(training_data(*tiny), FAST.model_copy(update={"mean_shrinkage": 0.0}))


def test_unknown_user_gets_the_movie_mean_and_unknown_movie_the_global_mean(tiny, plain):
    train = tiny[0]
    movie, user = int(train[MOVIE].iloc[0]), int(train[USER].iloc[0])
    # movie 50 is in the catalogue but nobody rated it; UNKNOWN_ID is in neither
    pairs = pd.DataFrame({USER: [UNKNOWN_ID, user, UNKNOWN_ID], MOVIE: [movie, 50, UNKNOWN_ID]})
    predicted = plain.predict(pairs)
    assert predicted[0] == pytest.approx(train.loc[train[MOVIE] == movie, RATING].mean())
    assert predicted[1] == pytest.approx(train[RATING].mean())
    assert predicted[2] == pytest.approx(train[RATING].mean())


def test_shrinkage_pulls_movie_means_toward_the_global_mean():
    means, global_mean = movie_means(np.array([0, 0, 1]), np.array([5.0, 5.0, 1.0]), 3, shrinkage=2.0)
    assert global_mean == pytest.approx(11 / 3)
    np.testing.assert_allclose(means, [(10 + 2 * 11 / 3) / 4, (1 + 2 * 11 / 3) / 3, 11 / 3])


def test_predictions_are_clipped_to_the_rating_range(tiny):
    model = CofiModel.fit(training_data(*tiny, scale=RatingScale(2.0, 3.0, 0.5)), FAST)
    predicted = model.predict(tiny[0][[USER, MOVIE]])
    assert predicted.min() == 2.0 and predicted.max() == 3.0


def test_score_block_gives_unknown_users_the_movie_means_and_unrated_movies_the_global_mean(tiny, plain):
    scores = plain.score_block(np.array([UNKNOWN_ID, int(tiny[0][USER].iloc[0])]))
    assert scores.shape == (2, len(plain.catalogue))
    rated = plain.catalogue.index(plain.movie_ids)
    np.testing.assert_allclose(scores[0, rated], plain.means)
    unrated = np.setdiff1d(np.arange(len(plain.catalogue)), rated)
    np.testing.assert_allclose(scores[:, unrated], tiny[0][RATING].mean())


# ---- a new user ----------------------------------------------------------------------------------


def test_new_user_weights_minimise_the_cost_with_x_fixed(plain):
    ratings = {10: 5.0, 11: 1.0, 12: 4.5, 13: 2.0, 14: 3.0, 15: 5.0}
    w, b = plain.fit_new_user(ratings)
    rows = index_of(np.array(list(ratings)), plain.movie_ids)
    X = plain.factors["X"][rows].astype(np.float64)
    target = np.array(list(ratings.values())) - plain.means[rows]
    lam = plain.params.lambda_ * len(ratings)  # cost: mean -> the user's penalty counts once per rating
    gradient_w = X.T @ (X @ w + b - target) + lam * w
    gradient_b = np.sum(X @ w + b - target)
    np.testing.assert_allclose(gradient_w, 0, atol=1e-8)
    assert gradient_b == pytest.approx(0, abs=1e-8)


def test_new_user_recommendations_exclude_the_rated_movies_and_follow_the_ratings(plain):
    loved = {10: 5.0, 11: 5.0}
    recs = plain.recommend_for_ratings(loved, n=5)
    assert list(recs.columns) == [MOVIE, TITLE, "score"] and len(recs) == 5
    assert not set(loved) & set(recs[MOVIE])
    assert recs["score"].is_monotonic_decreasing


def test_new_user_with_no_ratings_gets_movies_by_mean(plain):
    recs = plain.recommend_for_ratings({}, n=3)
    best = plain.catalogue.movie_ids[plain.catalogue.index(plain.movie_ids)[np.argsort(-plain.means, kind="stable")[:3]]]
    assert list(recs[MOVIE]) == list(best)


def test_new_user_ratings_of_unknown_movies_or_out_of_range_are_clear_errors(plain):
    with pytest.raises(DataError, match=f"not in the catalogue.*{UNKNOWN_ID}"):
        plain.recommend_for_ratings({UNKNOWN_ID: 4.0})
    with pytest.raises(DataError, match="outside the rating range"):
        plain.recommend_for_ratings({10: 9.0})


def test_recommend_unknown_user_names_the_id(plain):
    with pytest.raises(RecsysError, match=f"unknown user {UNKNOWN_ID}"):
        plain.recommend(UNKNOWN_ID)


# ---- bad input -----------------------------------------------------------------------------------


def test_empty_train_is_a_clear_data_error(tiny):
    with pytest.raises(DataError, match="train.parquet: no ratings"):
        CofiModel.fit(training_data(tiny[0].iloc[:0], tiny[1], source="train.parquet"), FAST)


def test_nan_ratings_are_a_clear_data_error(tiny):
    train = tiny[0].copy()
    train.loc[[3, 8], RATING] = np.nan
    with pytest.raises(DataError, match=r"train.parquet: column 'rating': 2 rows are not finite"):
        CofiModel.fit(training_data(train, tiny[1], source="train.parquet"), FAST)


def test_movies_missing_from_the_catalogue_are_a_clear_data_error(tiny):
    with pytest.raises(DataError, match="column 'movie_id'.*missing from the movies table"):
        CofiModel.fit(training_data(tiny[0], tiny[1].iloc[5:]), FAST)


def test_a_diverging_cost_stops_training_with_a_message(tiny):
    with pytest.raises(ModelError, match="cost became (inf|nan) at iteration .*learning_rate"):
        CofiModel.fit(training_data(*tiny), FAST.model_copy(update={"learning_rate": 1e20}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_features", 0),
        ("lambda_", -1.0),
        ("iterations", 0),
        ("learning_rate", 0.0),
        ("init_scale", 0.0),
        ("mean_shrinkage", -1.0),
        ("batch_size", -1),
        ("validation_fraction", 0.9),
        ("cost", "median"),
        ("dtype", "float16"),
    ],
)
def test_params_out_of_range_are_rejected_with_the_key_named(key, value):
    with pytest.raises(ConfigError, match=rf"cofi\.{key}"):
        parse_params({"cofi": {key: value}})


def test_patience_without_a_validation_slice_is_rejected():
    with pytest.raises(ConfigError, match="cofi.*patience needs validation_fraction"):
        parse_params({"cofi": {"patience": 3}})


# ---- persistence ---------------------------------------------------------------------------------


def test_load_of_a_missing_or_foreign_folder_is_a_model_error(tmp_path, plain):
    with pytest.raises(ModelError, match="not found"):
        CofiModel.load(tmp_path)
    plain.save(tmp_path)
    (tmp_path / "cofi.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ModelError, match="not a cofi-1 model"):
        CofiModel.load(tmp_path)


def test_save_load_keeps_params_history_and_new_user_answers(tmp_path, plain):
    plain.save(tmp_path)
    loaded = CofiModel.load(tmp_path)
    assert loaded.params == plain.params and loaded.history.cost == plain.history.cost
    pd.testing.assert_frame_equal(loaded.recommend_for_ratings({10: 5.0}), plain.recommend_for_ratings({10: 5.0}))


def test_params_yaml_holds_the_documented_defaults():
    from pipeline.config import parse_params
    from tests.isolation import committed_yaml

    assert parse_params(committed_yaml("params.yaml")).cofi == CofiParams()
