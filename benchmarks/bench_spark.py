"""The Spark engine (MLlib ALS, `cofi.engine: spark`) vs the TensorFlow engine: quality on the
ml-latest-small split, and seconds and peak memory on 1M and 5M synthetic ratings.

    .venv/bin/python benchmarks/bench_spark.py                      # everything (~15 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_spark.py --skip-scale         # ml-latest-small only
    .venv/bin/python benchmarks/bench_spark.py --skip-small --sizes 1m --iterations 5
    .venv/bin/python benchmarks/bench_spark.py --tune 0.05 0.15 0.3 0.5   # ALS's lambda_ on a holdout of train

Every case runs in its own child process (so peak memory is its own) and prints one JSON line.
Quality: ratings.csv in file order, train_test_split(test_size=0.2, random_state=42), test RMSE in
clipped stars, project defaults (k 50, lambda_ 0.15, 30 iterations) for both engines. Scale: the
project's synthetic generator; seconds per iteration = (fit with N iterations - fit with 1) / (N - 1).
Spark runs on local[*] with spark.driver.memory 4g; the SparkSession is started before the timed
fits (its start, ~5-30 s, is shown apart). Memory: the Python process's peak RSS (VmHWM), and for
Spark the peak RSS of the JVM (a separate child process: sampled every 0.2 s with psutil, summed
over the child processes) and the peak of the sum of both (sampled; at least the Python peak).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import CofiParams, SparkParams, SyntheticParams  # noqa: E402
from pipeline.data.schema import MOVIE, RATING, USER, RatingScale  # noqa: E402
from pipeline.models.base import TrainingData  # noqa: E402

SCALE = RatingScale(0.5, 5.0, 0.5)
DEFAULT_MIRROR = Path(os.environ.get("RECSYS_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
SIZES = {
    "1m": SyntheticParams(n_users=10_000, n_movies=8_000, n_ratings=1_000_000, min_user_ratings=20, seed=7),
    "5m": SyntheticParams(n_users=40_000, n_movies=12_000, n_ratings=5_000_000, min_user_ratings=20, seed=7),
}
SPARK = SparkParams(master="local[*]", driver_memory="4g", conf={"spark.ui.enabled": "false"})


class MemorySampler:
    """Peak RSS (MiB) of this process, of its child processes (the JVM) and of both together."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.process, self.every = psutil.Process(), every
        self.peak_self = self.peak_children = self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children_rss(self) -> float:
        total = 0
        for child in self.process.children(recursive=True):
            with contextlib.suppress(Exception):  # a child that just exited
                total += child.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            own, children = self.process.memory_info().rss / 2**20, self._children_rss()
            self.peak_self, self.peak_children = max(self.peak_self, own), max(self.peak_children, children)
            self.peak_total = max(self.peak_total, own + children)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(dataset: str, mirror: Path):
    """(train, test or None, movies)."""
    if dataset == "ml-latest-small":
        from sklearn.model_selection import train_test_split

        from pipeline.data.movielens import read_csv_release

        ratings, movies = read_csv_release(mirror / "ml-latest-small")
        train, test = train_test_split(ratings, test_size=0.2, random_state=42)
        return train.reset_index(drop=True), test.reset_index(drop=True), movies
    from pipeline.data.synthetic import generate

    ratings, movies = generate(SIZES[dataset])
    return ratings, None, movies


def rmse(model: Any, ratings: Any) -> float:
    ratings = ratings.head(1_000_000)
    return float(np.sqrt(np.mean((model.predict(ratings[[USER, MOVIE]]) - ratings[RATING].to_numpy()) ** 2)))


def child(engine: str, dataset: str, iterations: int, mirror: Path) -> dict[str, Any]:
    """One case, in this (child) process."""
    from pipeline.models.cofi import CofiModel
    from pipeline.models.cofi_spark import fit_spark, spark_session

    train, test, movies = load(dataset, mirror)
    counts = [iterations] if test is not None else [1, iterations]
    row: dict[str, Any] = {"engine": engine, "dataset": dataset, "ratings": len(train), "iterations": iterations}
    with tempfile.TemporaryDirectory() as folder, MemorySampler() as memory:
        parquet = Path(folder) / "train.parquet"
        train.to_parquet(parquet, index=False)
        fits = {}
        if engine == "spark":
            started = time.perf_counter()
            with spark_session(SPARK):
                row["session_s"] = time.perf_counter() - started
                for n in counts:
                    started = time.perf_counter()
                    model = fit_spark(TrainingData(train, movies, SCALE), CofiParams(engine="spark", iterations=n), SPARK, parquet)
                    fits[n] = time.perf_counter() - started
        else:
            CofiModel.fit(TrainingData(train.head(50_000), movies, SCALE), CofiParams(iterations=1), progress=False)  # TF warm-up
            for n in counts:
                started = time.perf_counter()
                model = CofiModel.fit(TrainingData(train, movies, SCALE), CofiParams(iterations=n), progress=False)
                fits[n] = time.perf_counter() - started
    row["fit_s"] = fits[iterations]
    if len(fits) > 1:
        row["s_per_iteration"] = (fits[iterations] - fits[1]) / (iterations - 1)
    row["rmse"] = rmse(model, test if test is not None else train)
    row["rmse_on"] = "test" if test is not None else "train (first 1M)"
    python = vm_hwm_mib()  # exact; the samples can miss a short peak
    row.update(peak_python_mib=python, peak_jvm_mib=memory.peak_children, peak_total_mib=max(memory.peak_total, python))
    return row


def tune(lambdas: list[float], mirror: Path) -> list[dict[str, Any]]:
    """ALS's lambda_ chosen on a 10% holdout of the ml-latest-small train split (never test), then
    the best one refitted on the whole train split and scored once on test."""
    from sklearn.model_selection import train_test_split

    from pipeline.models.cofi_spark import fit_spark, spark_session

    train, test, movies = load("ml-latest-small", mirror)
    fit_part, holdout = train_test_split(train, test_size=0.1, random_state=0)
    rows = []
    with tempfile.TemporaryDirectory() as folder, spark_session(SPARK):

        def fit(frame, lambda_):
            parquet = Path(folder) / f"{len(frame)}.parquet"
            frame.to_parquet(parquet, index=False)
            return fit_spark(TrainingData(frame, movies, SCALE), CofiParams(engine="spark", lambda_=lambda_), SPARK, parquet)

        for lambda_ in lambdas:
            rows.append({"lambda_": lambda_, "validation_rmse": rmse(fit(fit_part, lambda_), holdout)})
            print(json.dumps(rows[-1]), flush=True)
        best = min(rows, key=lambda row: row["validation_rmse"])
        best["test_rmse"] = rmse(fit(train, best["lambda_"]), test)
    print(json.dumps(best))
    return rows


def run_child(engine: str, dataset: str, iterations: int, mirror: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", engine, dataset, str(iterations), "--mirror", str(mirror)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    row = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data | engine | ratings | RMSE (on) | fit s | s / iteration | peak MiB Python | peak MiB JVM | peak MiB both |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = f"{r['s_per_iteration']:.2f}" if "s_per_iteration" in r else "-"
        jvm = f"{r['peak_jvm_mib']:.0f}" if r["engine"] == "spark" else "-"
        lines.append(
            f"| {r['dataset']} | {r['engine']} | {r['ratings']:,} | {r['rmse']:.4f} ({r['rmse_on']}) | {r['fit_s']:.1f} | "
            f"{per} | {r['peak_python_mib']:.0f} | {jvm} | {r['peak_total_mib']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding ml-latest-small/")
    parser.add_argument("--skip-small", action="store_true", help="skip ml-latest-small")
    parser.add_argument("--skip-scale", action="store_true", help="skip the synthetic sizes")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--iterations", type=int, default=10, help="iterations of the timed synthetic fits")
    parser.add_argument("--engines", nargs="+", default=["tensorflow", "spark"], choices=["tensorflow", "spark"])
    parser.add_argument("--tune", nargs="+", type=float, metavar="LAMBDA", help="only: choose ALS's lambda_ on a holdout of train")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "DATA", "ITERATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, dataset, iterations = args.child
        print(json.dumps(child(engine, dataset, int(iterations), args.mirror)))
        return
    if args.tune:
        tune(args.tune, args.mirror)
        return
    rows = []
    if not args.skip_small:
        rows += [run_child(engine, "ml-latest-small", CofiParams().iterations, args.mirror) for engine in args.engines]
    if not args.skip_scale:
        rows += [run_child(engine, size, args.iterations, args.mirror) for size in args.sizes for engine in args.engines]
    print(markdown(rows))


if __name__ == "__main__":
    main()
