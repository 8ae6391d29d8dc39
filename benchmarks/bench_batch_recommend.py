"""Batch recommendations at scale: every user's top-k from cofi_ranking, wall time and peak memory of the batch step.

    nice -n 19 .venv/bin/python benchmarks/bench_batch_recommend.py        # 25M ratings, 147,000 users x 50,000 movies
    .venv/bin/python benchmarks/bench_batch_recommend.py --n-users 6000 --n-movies 10000 --n-ratings 1000000

Data: the project's synthetic generator (pipeline.data.synthetic.generate, seed 42), every rating a
training rating, so each user's seen movies (all of them) are excluded. cofi_ranking is fitted with
the project's defaults except --iterations ALS iterations (2 by default: the batch step's cost does not
depend on how well the model fits). Ratings, movies and the fitted model are cached under --workdir
(<n_users>x<n_movies>x<n_ratings>/), so a second run measures the batch step alone; generating 25M
ratings and fitting take minutes.

The batch step runs in a child process of its own, as the recommend stage does it: load models/
cofi_ranking/ (pipeline.models.loading.load_trained), then pipeline.batch.write_top_k over every
training user (recommend.batch_size users per block) into a parquet file. Reported: load and batch
wall seconds, peak RSS of the batch step alone (VmHWM reset through /proc/self/clear_refs after the
load) and of the whole process up to the end of the step (imports, model and seen movies included).
The lists are then checked (k rows per user ranked 1..k, no seen movie) outside the measured part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import CofiRankingParams, RecommendParams, SyntheticParams  # noqa: E402
from pipeline.data.schema import MOVIE, USER, RatingScale  # noqa: E402

SCALE = RatingScale(0.5, 5.0, 0.5)
NAME = "cofi_ranking"
TARGET_MIB = 8 * 1000**3 / 2**20  # the 8 GB target


def status_mib(key: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder(workdir: Path, data: SyntheticParams) -> Path:
    return workdir / f"{data.n_users}x{data.n_movies}x{data.n_ratings}"


def models_dir(workdir: Path, data: SyntheticParams, iterations: int) -> Path:
    return folder(workdir, data) / f"models-{iterations}-iterations"


def prepare_child(workdir: Path, data: SyntheticParams, iterations: int) -> None:
    """Runs in a child: generate (or read) the ratings, fit and save cofi_ranking unless cached; prints one JSON line."""
    import pandas as pd

    from pipeline.data.synthetic import generate
    from pipeline.models.base import TrainingData
    from pipeline.models.cofi_ranking import CofiRankingModel

    here = folder(workdir, data)
    ratings_file, movies_file = here / "ratings.parquet", here / "movies.parquet"
    timings: dict[str, Any] = {}
    if ratings_file.is_file() and movies_file.is_file():
        ratings, movies = pd.read_parquet(ratings_file, columns=[USER, MOVIE, "rating"]), pd.read_parquet(movies_file)
    else:
        started = time.perf_counter()
        ratings, movies = generate(data)
        timings["generate_s"] = time.perf_counter() - started
        here.mkdir(parents=True, exist_ok=True)
        movies.to_parquet(movies_file, index=False)
        ratings.to_parquet(ratings_file, index=False)
    target = models_dir(workdir, data, iterations) / NAME
    if not target.is_dir():
        started = time.perf_counter()
        params = CofiRankingParams(iterations=iterations)
        model = CofiRankingModel.fit(TrainingData(ratings, movies, SCALE), params, progress=False)
        timings["fit_s"] = time.perf_counter() - started
        model.save(target)
    print(json.dumps({"ratings": len(ratings), "users": int(ratings[USER].nunique()), "movies": len(movies), **timings}))


def check_lists(path: Path, model: Any, k: int) -> dict[str, Any]:
    """k rows per user ranked 1..k (fewer only when fewer movies are unseen), no seen movie, every user listed."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    users, ranks = table[USER].to_numpy(), table["rank"].to_numpy()
    movies = table[MOVIE].to_numpy()
    seen = model.seen
    per_user = np.diff(seen.indptr)
    expected = np.minimum(k, len(model.catalogue) - per_user)
    listed_users, counts = np.unique(users, return_counts=True)
    user_pos = np.searchsorted(seen.user_ids, users)
    n_movies = len(model.catalogue)
    seen_keys = np.repeat(np.arange(len(seen.user_ids), dtype=np.int64), per_user) * n_movies + seen.indices
    keys = user_pos * n_movies + model.catalogue.index(movies)
    hits = seen_keys[np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)] == keys
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_ok = bool((ranks == np.arange(len(ranks)) - np.repeat(starts, counts) + 1).all())
    return {
        "every_user_listed": bool(np.array_equal(listed_users, seen.user_ids)),
        "rows_per_user_ok": bool(np.array_equal(counts, expected)),
        "ranks_1_to_k": rank_ok,
        "seen_movies_listed": int(hits.sum()),
    }


def batch_child(workdir: Path, data: SyntheticParams, iterations: int, k: int, batch_size: int) -> None:
    """Runs in a child: the recommend stage's load and batch step, measured; prints one JSON line."""
    from pipeline.batch import write_top_k
    from pipeline.models.loading import load_trained

    out = folder(workdir, data) / "top_k.parquet"
    started = time.perf_counter()
    model = load_trained(NAME, models_dir(workdir, data, iterations))
    load_s = time.perf_counter() - started
    peak_before, rss_loaded = status_mib("VmHWM"), status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS, so the next peak is the batch step's
    started = time.perf_counter()
    rows = write_top_k(model, model.seen.user_ids, k, batch_size, out)
    batch_s = time.perf_counter() - started
    peak_step = status_mib("VmHWM")
    users = len(model.seen.user_ids)
    result = {
        "users": users, "movies": len(model.catalogue), "seen": len(model.seen.indices), "k": k, "batch_size": batch_size,
        "rows": rows, "file_mib": out.stat().st_size / 2**20, "load_s": load_s, "batch_s": batch_s,
        "users_per_s": users / batch_s, "scores_per_s": users * len(model.catalogue) / batch_s,
        "rss_after_load_mib": rss_loaded, "peak_batch_step_mib": peak_step, "peak_process_mib": max(peak_before, peak_step),
    }  # fmt: skip
    result.update(check_lists(out, model, k))
    print(json.dumps(result))


def child(flag: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, flag, "--workdir", str(args.workdir), "--n-users", str(args.n_users)]
    command += ["--n-movies", str(args.n_movies), "--n-ratings", str(args.n_ratings), "--iterations", str(args.iterations)]
    command += ["--k", str(args.k), "--batch-size", str(args.batch_size)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown(prepared: dict[str, Any], result: dict[str, Any]) -> str:
    lines = [
        "| users x movies | ratings | k | batch_size | rows | load s | batch s | users / s | peak batch step MiB | peak process MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {result['users']:,} x {result['movies']:,} | {prepared['ratings']:,} | {result['k']} | {result['batch_size']} | "
        f"{result['rows']:,} | {result['load_s']:.1f} | {result['batch_s']:.1f} | {result['users_per_s']:,.0f} | "
        f"{result['peak_batch_step_mib']:,.0f} | {result['peak_process_mib']:,.0f} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsys-batch"), help="cache of ratings, model and output")
    parser.add_argument("--n-users", type=int, default=147_000)
    parser.add_argument("--n-movies", type=int, default=50_000)
    parser.add_argument("--n-ratings", type=int, default=25_000_000)
    parser.add_argument("--iterations", type=int, default=2, help="ALS iterations of the fit")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=RecommendParams().batch_size, help="users per block")
    parser.add_argument("--prepare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = SyntheticParams(n_users=args.n_users, n_movies=args.n_movies, n_ratings=args.n_ratings, min_user_ratings=20)
    if args.prepare_child:
        prepare_child(args.workdir, data, args.iterations)
        return
    if args.batch_child:
        batch_child(args.workdir, data, args.iterations, args.k, args.batch_size)
        return
    prepared = child("--prepare-child", args)
    print(json.dumps(prepared), flush=True)
    result = child("--batch-child", args)
    print(json.dumps(result))
    print()
    print(markdown(prepared, result))
    checks = ("every_user_listed", "rows_per_user_ok", "ranks_1_to_k")
    ok = all(result[c] for c in checks) and result["seen_movies_listed"] == 0
    peak = result["peak_process_mib"]
    print(f"\nlists checked: {'ok' if ok else 'FAILED'}; peak {peak:,.0f} MiB vs the 8 GB target ({TARGET_MIB:,.0f} MiB)")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
