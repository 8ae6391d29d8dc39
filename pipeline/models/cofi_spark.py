"""Collaborative filtering on Spark: MLlib ALS (explicit ratings) writing the project's cofi model.

ALS factorises the mean-normalised training ratings ynorm = rating - mean_i (movie means from the
training ratings, shrunk as in `cofi.movie_means`), so the CofiModel built from its factors predicts
mean_i + x_i . w_j exactly as the TensorFlow engine's model does, with the user biases b = 0 (ALS has
none). evaluate, promote, recommend and serving load it unchanged.

Parameters: rank = num_features, maxIter = iterations, seed = seed, regParam from lambda_:
ALS (ALS-WR) minimises  sum (x_i . w_j - ynorm_ij)^2 + regParam * (sum_i n_i |x_i|^2 + sum_j n_j |w_j|^2),
n_i, n_j the ratings of movie i and user j. That is 2 n times the project's `cost: mean` J, so
regParam = lambda_. The course's `cost: sum` penalises every row once, which ALS cannot do; there
regParam = lambda_ * (movies + users) / (2 n): the same total penalty weight, spread over the rows
in proportion to their ratings.

The cost J (the project's formula for `cost`, b = 0) is computed in NumPy on the driver from the
collected factors. ALS has no per-iteration hook, so with `log_cost_every = e` the model is refitted
from the same seed with maxIter = e, 2e, ... (the state after t iterations of a longer run): the
curve costs about iterations^2 / (2 e) ALS iterations. Without it only the final J is computed.
pyspark is imported inside the functions (an optional extra; the CLI starts without it).
"""

from __future__ import annotations

import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from pipeline.config import CofiParams, SparkParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import ConfigError, ModelError, RecsysError, data_error
from pipeline.models.base import TrainingData, index_of
from pipeline.models.cofi import (
    CHUNK,
    CofiModel,
    Encoded,
    History,
    check_train,
    encode_against_catalogue,
    movie_means,
)

INT32_MAX = np.iinfo(np.int32).max
STANDALONE_PORT, K8S_PORT = 7077, 443
DEFAULT_CONF = {"spark.ui.showConsoleProgress": "false"}  # tqdm-like bars in logs; spark.conf overrides it


# ---- the Spark session ----------------------------------------------------------------------


def master_endpoints(master: str) -> list[tuple[str, int]]:
    """(host, port) of each master the driver must reach: spark://h1:p1,h2:p2 and k8s://https://h:p;
    none for local[...] (in process) and yarn (found through HADOOP_CONF_DIR by Spark itself)."""
    if master.startswith("spark://"):
        endpoints = []
        for part in master.removeprefix("spark://").split(","):
            host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
            endpoints.append((host, _port(port or str(STANDALONE_PORT), master)))
        return endpoints
    if master.startswith("k8s://"):
        url = master.removeprefix("k8s://")
        parts = urlsplit(url if "://" in url else f"https://{url}")
        return [(parts.hostname or "", parts.port or K8S_PORT)]
    return []


def _port(text: str, master: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"params.yaml: spark.master: port {text!r} is not a number (got {master!r})")
    return int(text)


def check_master(spark: SparkParams) -> None:
    """A RecsysError naming the master when one of its endpoints refuses or ignores a TCP connection
    for `connect_timeout_seconds` (Spark's driver would retry registering for minutes)."""
    for host, port in master_endpoints(spark.master):
        try:
            socket.create_connection((host, port), timeout=spark.connect_timeout_seconds).close()
        except OSError as exc:
            raise RecsysError(
                f"Spark master {spark.master} cannot be reached ({host}:{port}: {exc.strerror or exc}) within "
                f"{spark.connect_timeout_seconds:g} s; start it or set spark.master (e.g. local[*])"
            ) from None


@contextmanager
def spark_session(spark: SparkParams, app_name: str = "recsys-cofi") -> Iterator[Any]:
    """A SparkSession on `spark.master`; an already running session is reused and left running,
    one started here is stopped on exit."""
    check_master(spark)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "cofi.engine: spark needs pyspark, the optional extra `spark`: uv sync --extra spark (or pip install 'recsys-pipeline[spark]')"
        ) from None
    existing = SparkSession.getActiveSession()
    builder = SparkSession.builder.master(spark.master).appName(app_name).config("spark.driver.memory", spark.driver_memory)
    for key, value in {**DEFAULT_CONF, **spark.conf}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j / PySpark errors: Java missing, bad conf, master refusing the app
        raise RecsysError(f"Spark could not start on master {spark.master}: {_first_line(exc)} (needs Java 17+: java -version)") from None
    session.sparkContext.setLogLevel("WARN")
    try:
        yield session
    finally:
        if existing is None:
            session.stop()


def _first_line(exc: BaseException) -> str:
    """The first informative line of an exception (py4j's own "An error occurred while calling" skipped)."""
    lines = [line.strip(" :") for line in str(exc).splitlines() if line.strip(" :")]
    lines = [line for line in lines if not line.startswith("An error occurred while calling")] or lines
    return lines[0] if lines else type(exc).__name__


# ---- training ---------------------------------------------------------------------------------


def reg_param(params: CofiParams, n_ratings: int, n_movies: int, n_users: int) -> float:
    """ALS's regParam for the project's lambda_ (module doc)."""
    if params.cost == "mean":
        return params.lambda_
    return params.lambda_ * (n_movies + n_users) / (2.0 * n_ratings)


def als_input(session: Any, parquet: str | Path, means: pd.DataFrame) -> Any:
    """The train split read by Spark: (user_id int, movie_id int, ynorm double), the movie means joined."""
    from pyspark.sql import functions as F

    ratings = session.read.parquet(str(Path(parquet).resolve())).select(
        F.col(USER).cast("int").alias(USER), F.col(MOVIE).cast("int").alias(MOVIE), F.col(RATING).cast("double")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        means_frame = session.createDataFrame(means)
    return ratings.join(F.broadcast(means_frame), on=MOVIE).select(USER, MOVIE, (F.col(RATING) - F.col("mean")).alias("ynorm"))


def fit_als(frame: Any, params: CofiParams, reg: float, max_iter: int, blocks: int) -> Any:
    """An ALSModel on `frame` (see `als_input`), users and movies each in `blocks` blocks."""
    from pyspark.ml.recommendation import ALS

    als = ALS(
        rank=params.num_features,
        maxIter=max_iter,
        regParam=reg,
        seed=params.seed,
        userCol=USER,
        itemCol=MOVIE,
        ratingCol="ynorm",
        implicitPrefs=False,
        nonnegative=False,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    return als.fit(frame)


def collect_factors(factors: Any, ids: np.ndarray) -> np.ndarray:
    """ALS's (id, features) frame as a (len(ids) x rank) array in the order of the sorted `ids`."""
    with warnings.catch_warnings():  # pyspark warns that it does not yet fully support pandas 3
        warnings.simplefilter("ignore", FutureWarning)
        table = factors.toPandas()
    values = np.asarray(np.stack(table["features"].to_numpy()), np.float64) if len(table) else np.zeros((0, 0))
    out = np.zeros((len(ids), values.shape[1]))
    pos = index_of(table["id"].to_numpy(np.int64), ids)
    out[pos[pos >= 0]] = values[pos >= 0]
    return out


def cost_j(X: np.ndarray, W: np.ndarray, data: Encoded, normalised: np.ndarray, params: CofiParams) -> float:
    """The project's cost J (`params.cost`) of factors X, W with b = 0, over the observed pairs, in chunks."""
    squared = 0.0
    for start in range(0, len(normalised), CHUNK):
        rows = slice(start, start + CHUNK)
        predicted = np.einsum("ij,ij->i", X[data.movie_idx[rows]], W[data.user_idx[rows]])
        squared += float(np.sum((predicted - normalised[rows]) ** 2))
    if params.cost == "sum":
        return 0.5 * squared + params.lambda_ / 2 * float(np.sum(X**2) + np.sum(W**2))
    movie_counts = np.bincount(data.movie_idx, minlength=len(X))
    user_counts = np.bincount(data.user_idx, minlength=len(W))
    penalty = float(movie_counts @ np.sum(X**2, axis=1) + user_counts @ np.sum(W**2, axis=1))
    return (squared + params.lambda_ * penalty) / (2.0 * len(normalised))


def checkpoints(iterations: int, every: int) -> list[int]:
    """ALS iteration counts at which J is computed: every `every`-th and always the last."""
    if every == 0:
        return [iterations]
    return sorted(set(range(every, iterations + 1, every)) | {iterations})


def check_int32_ids(train: pd.DataFrame, source: str) -> None:
    """ALS keys users and items by int; larger ids are a DataError naming the column."""
    for column in (USER, MOVIE):
        ids = train[column].to_numpy(np.int64)
        bad = (ids < 0) | (ids > INT32_MAX)
        if bad.any():
            raise data_error(source, f"are outside ALS's id range 0..{INT32_MAX}", column=column, count=int(bad.sum()), examples=ids[bad])


def fit_spark(data: TrainingData, params: CofiParams, spark: SparkParams, parquet: str | Path) -> CofiModel:
    """Train with ALS on `spark.master`, Spark reading `parquet` (the same ratings as `data.ratings`,
    which give the id maps, movie means, seen items and the cost J on the driver)."""
    train, source = data.ratings, data.source
    check_train(train, source)
    check_int32_ids(train, source)
    catalogue, encoded = encode_against_catalogue(train, data.movies, source)
    started = time.perf_counter()
    means, global_mean = movie_means(encoded.movie_idx, encoded.ratings, len(encoded.movie_ids), params.mean_shrinkage)
    normalised = encoded.ratings - means[encoded.movie_idx]
    reg = reg_param(params, len(normalised), len(encoded.movie_ids), len(encoded.user_ids))
    history = History()  # J at each checkpoint; its last step is iteration `iterations` - 1
    with spark_session(spark) as session, tempfile.TemporaryDirectory(prefix="recsys-als-") as scratch:
        # without checkpoints the lineage of many ALS iterations overflows the JVM stack
        session.sparkContext.setCheckpointDir(spark.checkpoint_dir or scratch)
        blocks = session.sparkContext.defaultParallelism  # one block per core (ALS's default 10 is slow on few cores)
        frame = None
        try:
            frame = als_input(session, parquet, pd.DataFrame({MOVIE: encoded.movie_ids.astype(np.int32), "mean": means})).cache()
            for count in checkpoints(params.iterations, params.log_cost_every):
                model = fit_als(frame, params, reg, count, blocks)
                X, W = collect_factors(model.itemFactors, encoded.movie_ids), collect_factors(model.userFactors, encoded.user_ids)
                history.record(count - 1, cost_j(X, W, encoded, normalised, params))  # J after `count` sweeps
        except Exception as exc:  # py4j/Spark errors carry pages of JVM stack: keep the first line
            raise ModelError(f"Spark ALS failed on master {spark.master}: {_first_line(exc)} (no model was written)") from None
        finally:
            if frame is not None:
                frame.unpersist()
    history.seconds = time.perf_counter() - started
    factors = {"X": X.astype(params.dtype), "W": W.astype(params.dtype), "b": np.zeros(len(encoded.user_ids), params.dtype)}
    return CofiModel.assemble(train, encoded, catalogue, factors, (means, global_mean), data.scale.bounds, params, history)
