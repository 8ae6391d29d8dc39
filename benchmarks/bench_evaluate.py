"""Wall time and peak memory of the evaluate stage, run as its own process on prepared inputs.

    python benchmarks/bench_evaluate.py                          # both sets below
    python benchmarks/bench_evaluate.py --sets synthetic --users 10000 --movies 10000 --ratings 1000000

Sets: ml-latest-small (610 users x 9,742 movies, the ml-latest-small split of benchmarks/README.md;
needs --mirror, a folder holding ml-latest-small/) and a synthetic users x movies set. The models evaluated are the three baselines plus
a random-factor model (32 factors, standing in for a trained model: same load/predict/score_block
path) saved under models/random/ with its own MLflow training run. Everything happens in a
temporary folder with its own MLflow store. "stage wall" is the whole process (imports, reading,
fitting the baselines, metrics, report, MLflow logging); "metrics core" is evaluate_all alone
(predictions and block-wise ranking of every model). Peak memory is the process's maximum
resident set size (os.wait4), in MiB; the "imports only" row is the floor of any such process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.models.base import (  # noqa: E402
    Catalogue,
    SeenItems,
    TrainingData,
    check_pairs,
    index_of,
    load_arrays,
    recommendation_frame,
    save_arrays,
    seen_exclusion,
)
from pipeline.models.ranking import SupportRanking  # noqa: E402

FACTORS = 32
# The stage as `recsys evaluate` runs it, with the metrics core (evaluate_all) timed on the side.
STAGE = """
import sys, time
sys.path.insert(0, {bench!r})
from pipeline.config import load_params
from pipeline.paths import DEFAULT_LAYOUT
from pipeline.stages import evaluate
core = evaluate.evaluate_all
def timed(*args, **kwargs):
    start = time.perf_counter()
    result = core(*args, **kwargs)
    print("CORE", time.perf_counter() - start, file=sys.stderr)
    return result
evaluate.evaluate_all = timed
evaluate.run(load_params(), DEFAULT_LAYOUT, trained={{"random": "bench_evaluate:RandomFactorModel"}})
"""
IMPORTS_ONLY = "import pipeline.stages.evaluate, pipeline.tracking, matplotlib.figure"


@dataclass(frozen=True, eq=False)
class RandomFactorModel(SupportRanking):
    """mean + u . v with random factors: a stand-in with the cost profile of a factor model."""

    catalogue: Catalogue
    seen: SeenItems
    user_ids: np.ndarray
    user_factors: np.ndarray
    movie_factors: np.ndarray
    mean: float

    predicts_ratings: ClassVar[bool] = True

    @classmethod
    def fit(cls, data: TrainingData, params: None = None, *, seed: int = 0) -> Self:
        rng = np.random.default_rng(seed)
        train, catalogue = data.ratings, Catalogue.from_movies(data.movies)
        user_ids = np.unique(train["user_id"].to_numpy(np.int64))
        scale = 0.5 / np.sqrt(FACTORS)
        return cls(
            catalogue,
            SeenItems.from_ratings(train, catalogue),
            user_ids,
            rng.normal(0, scale, (len(user_ids), FACTORS)),
            rng.normal(0, scale, (len(catalogue), FACTORS)),
            float(train["rating"].mean()),
        )

    def _user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        return np.where((pos >= 0)[:, None], self.user_factors[np.maximum(pos, 0)], 0.0)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        users, movies = check_pairs(pairs)
        pos = self.catalogue.index(movies)
        movie_rows = np.where((pos >= 0)[:, None], self.movie_factors[np.maximum(pos, 0)], 0.0)
        return np.clip(self.mean + np.einsum("ij,ij->i", self._user_rows(users), movie_rows), 0.5, 5.0)

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        return self.rank_scores(self.mean + self._user_rows(user_ids) @ self.movie_factors.T)

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        scores = self.score_block(np.array([user_id], np.int64))[0]
        return recommendation_frame(self.catalogue, scores, n, seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen))

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        arrays = {"user_ids": self.user_ids, "user_factors": self.user_factors, "movie_factors": self.movie_factors}
        shared = {**self.catalogue.to_arrays(), **self.seen.to_arrays()}
        save_arrays(directory, "random.npz", {**shared, **arrays, "mean": np.array(self.mean)})

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        a = load_arrays(directory, "random.npz")
        return cls(
            Catalogue.from_arrays(a), SeenItems.from_arrays(a), a["user_ids"], a["user_factors"], a["movie_factors"], float(a["mean"])
        )


def movielens_small(mirror: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = mirror / "ml-latest-small"
    ratings = pd.read_csv(folder / "ratings.csv").rename(columns={"userId": "user_id", "movieId": "movie_id"})
    movies = pd.read_csv(folder / "movies.csv").rename(columns={"movieId": "movie_id"})
    return ratings, movies


def synthetic(n_users: int, n_movies: int, n_ratings: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distinct (user, movie) pairs, movies drawn with a Zipf-like popularity, half-star ratings."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.8
    draws = int(n_ratings * 1.3)
    codes = rng.integers(0, n_users, draws) * n_movies + rng.choice(n_movies, draws, p=popularity / popularity.sum())
    codes = rng.permutation(np.unique(codes))[:n_ratings]
    movie_quality = rng.normal(0, 0.5, n_movies)
    stars = np.clip(np.round((3.5 + movie_quality[codes % n_movies] + rng.normal(0, 0.9, len(codes))) * 2) / 2, 0.5, 5.0)
    ratings = pd.DataFrame(
        {"user_id": codes // n_movies + 1, "movie_id": codes % n_movies + 1, "rating": stars, "timestamp": 1_000_000_000}
    )
    movies = pd.DataFrame({"movie_id": np.arange(1, n_movies + 1), "title": [f"Movie {i}" for i in range(1, n_movies + 1)]})
    return ratings, movies


def prepare(workdir: Path, ratings: pd.DataFrame, movies: pd.DataFrame, source: str, env: dict[str, str]) -> dict[str, int]:
    """data/, models/random/, records/train_random.json (with a real MLflow run) in `workdir`."""
    from pipeline import tracking
    from pipeline.data.schema import RatingScale, conform_movies, conform_ratings
    from pipeline.split import split_ratings
    from pipeline.stages.inputs import dataset_identity

    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    movies = conform_movies(
        movies.assign(year=pd.array([None] * len(movies), dtype="Int64"), genres="")[["movie_id", "title", "year", "genres"]]
    )
    train, test = split_ratings(conform_ratings(ratings.assign(timestamp=ratings["timestamp"].astype("int64"))), "random", 0.2, 42)
    for folder in ("data/raw", "data/split", "records"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    movies.to_parquet(workdir / "data/raw/movies.parquet", index=False)
    train.to_parquet(workdir / "data/split/train.parquet", index=False)
    test.to_parquet(workdir / "data/split/test.parquet", index=False)
    dataset = {"source": source, "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": source}
    (workdir / "data/raw/dataset.json").write_text(json.dumps(dataset))
    RandomFactorModel.fit(TrainingData(train, movies, RatingScale(0.5, 5.0, 0.5))).save(workdir / "models/random")
    with tracking.start_run("random", "recsys", "random", dataset) as run_id:
        pass
    (workdir / "records/train_random.json").write_text(json.dumps({"mlflow_run_id": run_id, **dataset_identity(dataset)}))
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    return {"users": ratings["user_id"].nunique(), "movies": len(movies), "train": len(train), "test": len(test)}


def timed_process(code: str, workdir: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, seconds the code reported as `CORE s` on stderr, else NaN) of `python -c code`."""
    log = workdir / "stderr.log"
    start = time.perf_counter()
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    errors = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"process failed in {workdir}:\n{errors}")
    core = next((float(line.split()[1]) for line in errors.splitlines() if line.startswith("CORE ")), float("nan"))
    return wall, usage.ru_maxrss / 1024, core  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["ml-latest-small", "synthetic"], choices=["ml-latest-small", "synthetic"])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--movies", type=int, default=10_000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per set (the median is shown)")
    args = parser.parse_args()

    print("| set | users x movies | train / test ratings | stage wall s | metrics core s | peak MiB |")
    print("|---|---|---|---|---|---|")
    workdir = Path(tempfile.mkdtemp(prefix="recsys-bench-eval-"))
    # Bytecode cached in the temp folder (never in the venv), warmed by the first process.
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}", CI="true")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    try:
        timed_process(IMPORTS_ONLY, workdir, env)
        wall, peak, _ = timed_process(IMPORTS_ONLY, workdir, env)
        print(f"| imports only | - | - | {wall:.2f} | - | {peak:.0f} |", flush=True)
        for name in args.sets:
            data = movielens_small(args.mirror) if name == "ml-latest-small" else synthetic(args.users, args.movies, args.ratings)
            folder = workdir / name
            folder.mkdir()
            size = prepare(folder, *data, source=name, env=env)
            runs = [timed_process(STAGE.format(bench=str(Path(__file__).parent)), folder, env) for _ in range(args.repeat)]
            wall, core = (float(np.median([r[i] for r in runs])) for i in (0, 2))
            peak = max(r[1] for r in runs)
            shape = f"{size['users']:,} x {size['movies']:,} | {size['train']:,} / {size['test']:,}"
            print(f"| {name} | {shape} | {wall:.2f} | {core:.2f} | {peak:.0f} |", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
