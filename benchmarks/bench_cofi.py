"""Collaborative filtering vs scikit-surprise on the ml-latest-small split, and a 5M-rating scale run.

    .venv/bin/python benchmarks/bench_cofi.py                    # everything (~3 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_cofi.py --skip-large --repeats 5
    .venv/bin/python benchmarks/bench_cofi.py --only-large --engine tensorflow   # the 5M run, the other engine

Quality and speed (one process): ratings.csv in file order, train_test_split(test_size=0.2,
random_state=42), 80,668 / 20,168 rows; test RMSE/MAE in stars (predictions clipped to 0.5..5); fit wall
seconds, median of --repeats, the models interleaved repeat by repeat so machine noise hits them
alike, after one untimed warm-up fit each (TensorFlow's first graph in a process and Surprise's first
fit are one-off costs; the cold first cofi fit is printed too, before any other fit: with the default
engine it imports no TensorFlow). Surprise needs the `bench` extra:
`uv pip install --python .venv/bin/python scikit-surprise`.

Scale (a child process, so its peak memory is its own): a 5,000,000-rating synthetic set from the
project's generator (pipeline.data.synthetic), cofi with the project defaults; seconds per
iteration = (fit with N iterations - fit with 1) / (N - 1); peak RSS of the whole child process
(data included) and of the fit alone (VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import COURSE_COFI, CofiParams, SyntheticParams  # noqa: E402
from pipeline.data.schema import MOVIE, RATING, USER, RatingScale  # noqa: E402
from pipeline.models.base import TrainingData  # noqa: E402

SCALE = RatingScale(0.5, 5.0, 0.5)
RANGE = SCALE.bounds
DEFAULT_MIRROR = Path(os.environ.get("RECSYS_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
LARGE = SyntheticParams(n_users=40_000, n_movies=12_000, n_ratings=5_000_000, min_user_ratings=20, seed=7)


def load_split(mirror: Path):
    from sklearn.model_selection import train_test_split

    from pipeline.data.movielens import read_csv_release

    ratings, movies = read_csv_release(mirror / "ml-latest-small")
    train, test = train_test_split(ratings, test_size=0.2, random_state=42)
    return train.reset_index(drop=True), test.reset_index(drop=True), movies


def cofi_candidates() -> dict[str, CofiParams]:
    """The course, the project defaults, and what single changes buy."""
    default = CofiParams()
    return {
        "cofi, course setup": COURSE_COFI,
        "cofi, course setup, engine tensorflow": COURSE_COFI.model_copy(update={"engine": "tensorflow"}),
        "cofi, course setup with lambda_ 10": COURSE_COFI.model_copy(update={"lambda_": 10.0}),
        "cofi, defaults without mean_shrinkage": default.model_copy(update={"mean_shrinkage": 0.0}),
        "cofi, defaults with cost sum, lambda_ 15": default.model_copy(update={"cost": "sum", "lambda_": 15.0}),
        "cofi, defaults with num_features 100": default.model_copy(update={"num_features": 100}),
        "cofi, project defaults, engine tensorflow": default.model_copy(update={"engine": "tensorflow"}),
        "cofi, project defaults": default,
    }


def cofi_fitter(params: CofiParams, train, movies) -> Callable[[], Any]:
    from pipeline.models.cofi import CofiModel

    return lambda: CofiModel.fit(TrainingData(train, movies, SCALE), params, progress=False)


def surprise_fitters(train) -> dict[str, Callable[[], Any]]:
    try:
        from surprise import SVD, BaselineOnly, Dataset, Reader
    except ImportError:
        print("scikit-surprise not installed: its rows are skipped (uv pip install scikit-surprise)", file=sys.stderr)
        return {}
    trainset = Dataset.load_from_df(train[[USER, MOVIE, RATING]], Reader(rating_scale=RANGE)).build_full_trainset()

    def fit(algo_factory: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            algo = algo_factory()
            algo.fit(trainset)
            return algo

        return run

    return {
        "Surprise SVD, defaults": fit(lambda: SVD(random_state=0)),
        "Surprise BaselineOnly": fit(lambda: BaselineOnly(verbose=False)),
    }


def surprise_predict(algo: Any, test) -> np.ndarray:
    pairs = zip(test[USER].tolist(), test[MOVIE].tolist(), strict=True)
    return np.array([algo.predict(u, m, clip=False).est for u, m in pairs])


def quality_and_speed(mirror: Path, repeats: int) -> list[dict[str, Any]]:
    train, test, movies = load_split(mirror)
    fitters = {name: cofi_fitter(p, train, movies) for name, p in cofi_candidates().items()}
    fitters.update(surprise_fitters(train))
    started = time.perf_counter()
    fitters["cofi, project defaults"]()
    cold = time.perf_counter() - started
    models, times = {}, {name: [] for name in fitters}
    for name, fit in fitters.items():  # warm-up
        models[name] = fit()
    for _ in range(repeats):
        for name, fit in fitters.items():
            started = time.perf_counter()
            models[name] = fit()
            times[name].append(time.perf_counter() - started)
    rows = []
    for name, model in models.items():
        predicted = model.predict(test[[USER, MOVIE]]) if name.startswith("cofi") else surprise_predict(model, test)
        errors = np.clip(predicted, *RANGE) - test[RATING].to_numpy()
        row = {
            "model": name,
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "mae": float(np.mean(np.abs(errors))),
            "fit_s": statistics.median(times[name]),
        }
        if name.startswith("cofi"):
            row["iterations"] = model.history.iterations_run
        rows.append(row)
    rows.append({"model": "cofi, project defaults: first fit in a fresh process", "fit_s": cold})
    return rows


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def large_child(iterations: int, engine: str) -> None:
    """Runs in the child: prints one JSON line."""
    from pipeline.data.synthetic import generate
    from pipeline.models.cofi import CofiModel

    started = time.perf_counter()
    ratings, movies = generate(LARGE)
    generate_s = time.perf_counter() - started
    CofiModel.fit(TrainingData(ratings.head(50_000), movies, SCALE), CofiParams(iterations=1, engine=engine), progress=False)  # warm-up
    before = peak_rss_mib()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    fits = {}
    for n in (1, iterations):
        started = time.perf_counter()
        model = CofiModel.fit(TrainingData(ratings, movies, SCALE), CofiParams(iterations=n, engine=engine), progress=False)
        fits[n] = time.perf_counter() - started
    predicted = model.predict(ratings[[USER, MOVIE]].head(1_000_000))
    print(
        json.dumps(
            {
                "ratings": len(ratings),
                "users": int(ratings[USER].nunique()),
                "movies": int(ratings[MOVIE].nunique()),
                "generate_s": generate_s,
                "fit_1_s": fits[1],
                f"fit_{iterations}_s": fits[iterations],
                "s_per_iteration": (fits[iterations] - fits[1]) / (iterations - 1),
                "train_rmse_first_1M": float(np.sqrt(np.mean((predicted - ratings[RATING].to_numpy()[:1_000_000]) ** 2))),
                "peak_rss_before_fit_mib": before,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


def scale(iterations: int, engine: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--large-child", str(iterations), "--engine", engine]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | test RMSE | test MAE | fit s (median) | iterations |", "|---|---|---|---|---|"]
    for row in rows:
        fmt = lambda key, spec, row=row: format(row[key], spec) if key in row else "-"  # noqa: E731
        lines.append(
            f"| {row['model']} | {fmt('rmse', '.4f')} | {fmt('mae', '.4f')} | {fmt('fit_s', '.2f')} | {row.get('iterations', '-')} |"
        )
    return "\n".join(lines)


def quality_table(mirror: Path, repeats: int) -> None:
    rows = quality_and_speed(mirror, repeats)
    print(markdown(rows))
    svd = next((r for r in rows if r["model"] == "Surprise SVD, defaults"), None)
    ours = next(r for r in rows if r["model"] == "cofi, project defaults")
    if svd:
        ratio = ours["fit_s"] / svd["fit_s"]
        print(f"\nproject defaults / Surprise SVD: RMSE {ours['rmse']:.4f} vs {svd['rmse']:.4f}, fit time ratio {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding ml-latest-small/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true", help="skip the 5M-rating run")
    parser.add_argument("--only-large", action="store_true", help="only the 5M-rating run")
    parser.add_argument("--iterations", type=int, default=6, help="iterations of the timed 5M fit")
    parser.add_argument("--engine", default="numpy", choices=["numpy", "tensorflow"], help="cofi.engine of the 5M run")
    parser.add_argument("--large-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_child:
        large_child(args.large_child, args.engine)
        return
    if not args.only_large:
        quality_table(args.mirror, args.repeats)
    if not args.skip_large:
        large = scale(args.iterations, args.engine)
        print("\n| ratings | users x movies | generate s | s / iteration | fit 1 it s | peak RSS fit MiB | peak RSS process MiB |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {large['ratings']:,} | {large['users']:,} x {large['movies']:,} | {large['generate_s']:.1f} | "
            f"{large['s_per_iteration']:.2f} | {large['fit_1_s']:.1f} | {large['peak_rss_mib']:.0f} | "
            f"{max(large['peak_rss_mib'], large['peak_rss_before_fit_mib']):.0f} |"
        )
        print(json.dumps(large))


if __name__ == "__main__":
    main()
