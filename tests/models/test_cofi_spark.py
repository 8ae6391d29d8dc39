"""Collaborative filtering on Spark (MLlib ALS) in local[2]: the cost and regParam mapping by hand,
master parsing, an unreachable master, the model format, predictions against ALS's own, seeds, and the
train_cofi stage writing the same outputs as with the TensorFlow engine.

One SparkSession for the whole module (starting one takes seconds); every fit is a few ALS sweeps
on a few hundred ratings.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import CofiParams, SparkParams, parse_params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import ConfigError, DataError, ModelError, RecsysError
from pipeline.models.cofi import CofiModel, History, cofi_cost, encode, encode_against_catalogue, movie_means
from pipeline.models.cofi_spark import (
    als_input,
    checkpoints,
    cost_j,
    fit_als,
    fit_spark,
    master_endpoints,
    reg_param,
)
from pipeline.stages.train_cofi import run
from tests.factories import SCALE, low_rank_ratings, training_data, training_layout, training_outputs, training_result

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}
SPARK = SparkParams(master="local[2]", driver_memory="1g", conf=CONF)
PARAMS = CofiParams(engine="spark", num_features=3, iterations=4, lambda_=0.1)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- pure functions (no Spark) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("master", "expected"),
    [
        ("spark://node1:7077", [("node1", 7077)]),
        ("spark://a:7001,b:7002", [("a", 7001), ("b", 7002)]),
        ("spark://node1", [("node1", 7077)]),
        ("k8s://https://api.example:6443", [("api.example", 6443)]),
        ("k8s://api.example", [("api.example", 443)]),
        ("local[2]", []),
        ("yarn", []),
    ],
)
def test_master_endpoints(master, expected):
    assert master_endpoints(master) == expected


def test_a_master_port_that_is_not_a_number_is_a_config_error():
    with pytest.raises(ConfigError, match="spark.master: port 'x77' is not a number"):
        master_endpoints("spark://node1:x77")


def test_cost_j_is_the_projects_formula_worked_by_hand():
    # movies x = [1], [2]; users w = [1], [0.5]; pairs (movie, user, ynorm): (0,0,0.5) (1,0,2) (1,1,2)
    ratings = pd.DataFrame({USER: [7, 7, 8], MOVIE: [3, 4, 4], RATING: [0.5, 2.0, 2.0]})
    data = encode(ratings)
    X, W = np.array([[1.0], [2.0]]), np.array([[1.0], [0.5]])
    # errors 0.5, 0, -1 -> 1.25; penalty weighted by counts: 1*1 + 2*4 + 2*1 + 1*0.25 = 11.25
    mean = cost_j(X, W, data, data.ratings, CofiParams(lambda_=0.1, cost="mean"))
    assert mean == pytest.approx((1.25 + 0.1 * 11.25) / 6)
    total = cost_j(X, W, data, data.ratings, CofiParams(lambda_=0.1, cost="sum"))
    assert total == pytest.approx(0.5 * 1.25 + 0.05 * 6.25)
    Y, R = np.array([[0.5, 0.0], [2.0, 2.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    assert total == pytest.approx(cofi_cost(X, W, np.zeros((1, 2)), Y, R, 0.1))


def test_reg_param_is_lambda_per_rating_or_the_same_total_penalty_for_the_sum_cost():
    assert reg_param(CofiParams(lambda_=0.15, cost="mean"), 10, 3, 2) == 0.15
    # sum: every one of the 5 rows penalised once (weight 5 lambda) = regParam * sum of row counts (2 * 10)
    assert reg_param(CofiParams(lambda_=1.0, cost="sum"), 10, 3, 2) == pytest.approx(0.25)


@pytest.mark.parametrize(("iterations", "every", "expected"), [(5, 0, [5]), (5, 2, [2, 4, 5]), (4, 2, [2, 4]), (3, 1, [1, 2, 3])])
def test_checkpoints_end_at_the_last_iteration(iterations, every, expected):
    assert checkpoints(iterations, every) == expected


def test_params_reject_what_als_cannot_do():
    with pytest.raises(ValueError, match="engine spark"):
        CofiParams(engine="spark", movie_bias=True)
    with pytest.raises(ValueError, match="engine spark"):
        CofiParams(engine="spark", validation_fraction=0.1)


def test_ids_beyond_int32_are_a_data_error_naming_the_column():
    ratings, movies = low_rank_ratings(n_users=4, n_movies=5)
    ratings.loc[0, USER] = 2**31
    with pytest.raises(DataError, match=r"train.parquet: column 'user_id': 1 row are outside ALS's id range"):
        fit_spark(training_data(ratings, movies, source="train.parquet"), PARAMS, SPARK, "unused.parquet")


def test_an_unreachable_master_fails_within_the_timeout_naming_it():
    master = f"spark://127.0.0.1:{closed_port()}"
    ratings, movies = low_rank_ratings(n_users=4, n_movies=5)
    started = time.perf_counter()
    with pytest.raises(RecsysError, match=f"Spark master {master} cannot be reached"):
        fit_spark(training_data(ratings, movies), PARAMS, SparkParams(master=master, connect_timeout_seconds=2), "unused.parquet")
    assert time.perf_counter() - started < 5


def spark_like_model(history: History) -> CofiModel:
    """A CofiModel assembled as fit_spark does (zero user biases), from random factors: no Spark."""
    ratings, movies = low_rank_ratings(n_users=4, n_movies=5)
    catalogue, data = encode_against_catalogue(ratings, movies, "train")
    rng = np.random.default_rng(0)
    factors = {
        "X": rng.normal(size=(len(data.movie_ids), 3)).astype(np.float32),
        "W": rng.normal(size=(len(data.user_ids), 3)).astype(np.float32),
        "b": np.zeros(len(data.user_ids), np.float32),
    }
    means = movie_means(data.movie_idx, data.ratings, len(data.movie_ids), PARAMS.mean_shrinkage)
    return CofiModel.assemble(ratings, data, catalogue, factors, means, SCALE.bounds, PARAMS, history)


def test_save_and_load_keep_a_spark_history_whole(tmp_path):
    """J logged at ALS checkpoints 10, 20, 30 of 30 iterations: three costs, 30 iterations run."""
    history = History(cost=[3.0, 2.0, 1.5], steps=[9, 19, 29], seconds=1.25)
    spark_like_model(history).save(tmp_path / "cofi")
    loaded = CofiModel.load(tmp_path / "cofi").history
    assert loaded == history
    assert loaded.steps == [9, 19, 29] and loaded.iterations_run == 30


def test_a_model_saved_without_steps_loads_with_one_cost_per_iteration(tmp_path):
    spark_like_model(History(cost=[3.0, 2.0, 1.5])).save(tmp_path / "cofi")
    arrays = dict(np.load(tmp_path / "cofi" / "cofi.npz"))
    del arrays["cost_steps"]  # as saved before the steps were recorded
    np.savez(tmp_path / "cofi" / "cofi.npz", **arrays)
    loaded = CofiModel.load(tmp_path / "cofi").history
    assert loaded.steps == [0, 1, 2] and loaded.iterations_run == 3


def test_a_history_needs_one_step_per_cost():
    with pytest.raises(ValueError, match="2 steps for 3 costs"):
        History(cost=[3.0, 2.0, 1.5], steps=[9, 19])


# ---- ALS in local[2] ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session():
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(SPARK.master).appName("test-cofi-spark")
    for key, value in CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    ratings, movies = low_rank_ratings(n_users=20, n_movies=25)
    parquet = tmp_path_factory.mktemp("spark") / "train.parquet"
    ratings.to_parquet(parquet, index=False)
    return ratings, movies, parquet


@pytest.fixture(scope="module")
def fitted(session, data) -> CofiModel:
    ratings, movies, parquet = data
    return fit_spark(training_data(ratings, movies), PARAMS, SPARK, parquet)


def test_the_model_has_movie_means_zero_user_biases_and_beats_the_means(fitted, data):
    ratings = data[0]
    assert fitted.factors["X"].shape == (ratings[MOVIE].nunique(), 3)
    assert fitted.factors["W"].shape == (ratings[USER].nunique(), 3)
    assert not fitted.factors["b"].any()
    means_only = fitted.means[np.searchsorted(fitted.movie_ids, ratings[MOVIE])]
    rmse = lambda p: np.sqrt(np.mean((p - ratings[RATING]) ** 2))  # noqa: E731
    assert rmse(fitted.predict(ratings)) < 0.8 * rmse(means_only)
    assert fitted.history.iterations_run == PARAMS.iterations and fitted.history.steps == [PARAMS.iterations - 1]


def test_predictions_are_als_own_predictions_plus_the_movie_means_and_the_seed_fixes_them(session, fitted, data):
    ratings, movies, parquet = data
    means = pd.DataFrame({MOVIE: fitted.movie_ids.astype(np.int32), "mean": fitted.means})
    frame = als_input(session, parquet, means)
    als = fit_als(frame, PARAMS, PARAMS.lambda_, PARAMS.iterations, session.sparkContext.defaultParallelism)
    # the same seed: the very same factors as the fit behind `fitted`
    item = als.itemFactors.toPandas().sort_values("id")
    np.testing.assert_array_equal(np.stack(item["features"]).astype(np.float32), fitted.factors["X"])
    direct = als.transform(frame).toPandas().merge(means, on=MOVIE)
    expected = np.clip(direct["prediction"] + direct["mean"], *SCALE.bounds)
    np.testing.assert_allclose(fitted.predict(direct[[USER, MOVIE]].astype(np.int64)), expected, atol=1e-5)
    other = fit_spark(training_data(ratings, movies), PARAMS.model_copy(update={"seed": PARAMS.seed + 1}), SPARK, parquet)
    assert not np.allclose(other.factors["X"], fitted.factors["X"], atol=1e-3)


def test_model_format_round_trip(fitted, data, tmp_path):
    fitted.save(tmp_path / "cofi")
    loaded = CofiModel.load(tmp_path / "cofi")
    for name in ("X", "W", "b"):
        np.testing.assert_array_equal(loaded.factors[name], fitted.factors[name])
    pairs = pd.concat([data[0][[USER, MOVIE]].head(20), pd.DataFrame({USER: [999], MOVIE: [999]})], ignore_index=True)
    np.testing.assert_array_equal(loaded.predict(pairs), fitted.predict(pairs))
    assert loaded.params.engine == "spark" and loaded.history == fitted.history
    assert loaded.history.iterations_run == PARAMS.iterations and loaded.history.steps == [PARAMS.iterations - 1]
    pd.testing.assert_frame_equal(loaded.recommend(10, n=5), fitted.recommend(10, n=5))


def test_a_spark_failure_is_one_model_error_line_and_the_session_is_left_running(session, data):
    ratings, movies, parquet = data
    with pytest.raises(ModelError, match=r"Spark ALS failed on master local\[2\]: .*missing\.parquet") as error:
        fit_spark(training_data(ratings, movies), PARAMS, SPARK, parquet.parent / "missing.parquet")
    assert "\n" not in str(error.value)
    assert session.range(3).count() == 3  # the module's session was reused, not stopped


# ---- the stage ---------------------------------------------------------------------------------


def stage_params(**cofi) -> object:
    spark = {"master": SPARK.master, "driver_memory": "1g", "conf": CONF}
    return parse_params({"cofi": {"num_features": 3, "iterations": 3, **cofi}, "spark": spark, "mlflow": {"experiment": "spark-test"}})


def test_the_stage_on_spark_writes_what_the_tensorflow_engine_writes(session, tmp_path):
    layout = training_layout(tmp_path)
    model_dir, _, _, cost_csv = training_outputs(layout, "cofi")
    run(stage_params(), layout)
    tf_metrics, tf_curve = training_result(layout, "cofi"), pd.read_csv(cost_csv)

    run(stage_params(engine="spark", log_cost_every=1), layout)
    metrics, curve = training_result(layout, "cofi"), pd.read_csv(cost_csv)
    assert metrics.keys() == tf_metrics.keys() and list(curve.columns) == list(tf_curve.columns)
    assert curve["iteration"].tolist() == [0, 1, 2] and metrics["iterations_run"] == 3
    assert np.all(np.diff(curve["cost"]) <= 1e-9)  # ALS never raises its objective, which is the mean-cost J
    model = CofiModel.load(model_dir)
    train = pd.read_parquet(layout.train)
    data = encode(train)
    normalised = data.ratings - model.means[data.movie_idx]
    final = cost_j(model.factors["X"].astype(float), model.factors["W"].astype(float), data, normalised, model.params)
    assert metrics["final_cost"] == pytest.approx(final, rel=1e-5) and curve["cost"].iloc[-1] == pytest.approx(final, rel=1e-5)
    assert metrics["train_rmse"] == pytest.approx(np.sqrt(np.mean((model.predict(train) - train[RATING]) ** 2)))

    client = MlflowClient(tracking.tracking_uri())
    logged = client.get_run(metrics["mlflow_run_id"]).data.params
    assert logged["cofi.engine"] == "spark" and logged["spark.master"] == "local[2]"
    assert logged["learning_rate"] == "als"  # ALS has no learning rate; cofi.learning_rate stays as configured
    history = sorted(client.get_metric_history(metrics["mlflow_run_id"], "curve_train_cost"), key=lambda m: m.step)
    assert [m.step for m in history] == [0, 1, 2]
    np.testing.assert_allclose([m.value for m in history], curve["cost"])


def test_the_stage_with_an_unreachable_master_names_it_and_writes_nothing(tmp_path):
    layout = training_layout(tmp_path)
    master = f"spark://127.0.0.1:{closed_port()}"
    params = parse_params(
        {"cofi": {"engine": "spark"}, "spark": {"master": master, "connect_timeout_seconds": 2}, "mlflow": {"experiment": "spark-test"}}
    )
    with pytest.raises(RecsysError, match=f"Spark master {master} cannot be reached"):
        run(params, layout)
    assert not any(path.exists() for path in training_outputs(layout, "cofi"))
