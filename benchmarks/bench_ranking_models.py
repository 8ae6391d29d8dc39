"""Top-N lists of the ranking models against popularity: ml-latest-small (random, temporal and
cold_item splits) and the default synthetic data.

    .venv/bin/python benchmarks/bench_ranking_models.py --mirror <folder holding ml-latest-small/>   # the tables
    .venv/bin/python benchmarks/bench_ranking_models.py --datasets synthetic --models popularity cofi_ranking
    .venv/bin/python benchmarks/bench_ranking_models.py --tune        # validation figures behind the defaults
    .venv/bin/python benchmarks/bench_ranking_models.py --adam        # the same objective by Adam in TensorFlow
    .venv/bin/python benchmarks/bench_ranking_models.py --memory 5000000   # cofi_ranking on 5M synthetic ratings
    .venv/bin/python benchmarks/bench_ranking_models.py --memory 5000000 --models content_ranking   # the same, one epoch
    .venv/bin/python benchmarks/bench_ranking_models.py --genres      # content_ranking for genre-taste profiles

Protocol: ml-latest-small's ratings.csv in file order, split as sklearn's train_test_split(test_size=0.2,
random_state=42) (pipeline.split.split_ratings "random"), or each user's latest 20% (the "temporal"
strategy), or 20% of the movies held out with all their ratings ("cold_item": the candidates are then
only the movies without a training rating, a new-releases shelf, as the evaluate stage ranks);
synthetic: pipeline.data.synthetic with the params.yaml defaults, split by params.yaml's `split`
section. For each user, the candidates are every movie not rated by that user in train; relevant =
test rating >= 4; users with at least one relevant test movie are ranked; k = 10; metrics by
pipeline.evaluation.metrics.evaluate_model. Models use the project's defaults (pipeline/config.py,
equal to params.yaml). RMSE: on the test ratings, for the rating models (cofi_rating, content_rating
and their bias baseline), as the evaluate stage scores them. Fit seconds: wall time of fit() and the
CPU time of this process during it (the machine is shared: wall time depends on its load, CPU time
much less).

--tune fits on 80% of the ml-latest-small train split and scores on the other 20% (random, seed 7),
never on the test split: one change at a time from the defaults for cofi_ranking, and small grids for
EASE and genre affinity. MODELS maps a name to a fit function (train, movies, params) -> model: add one
there to put another model in every table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import CofiRankingParams, EaseParams, GenreAffinityParams, Params, SyntheticParams  # noqa: E402  # noqa: E402
from pipeline.data.schema import RatingScale  # noqa: E402
from pipeline.errors import ModelSkipped  # noqa: E402
from pipeline.evaluation.metrics import evaluate_model  # noqa: E402
from pipeline.models.base import SeenItems, TrainingData  # noqa: E402
from pipeline.models.baselines import BiasModel, PopularityModel  # noqa: E402
from pipeline.models.cofi_ranking import CofiRankingModel  # noqa: E402
from pipeline.models.ease import EaseModel  # noqa: E402
from pipeline.models.genre_affinity import GenreAffinityModel  # noqa: E402
from pipeline.split import split_ratings  # noqa: E402

RANGE = (0.5, 5.0)
SCALE = RatingScale(*RANGE, 0.5)


def data(train: pd.DataFrame, movies: pd.DataFrame) -> TrainingData:
    return TrainingData(train, movies, SCALE)


K, THRESHOLD, COLD = 10, 4.0, 5
MEMORY_DATA = {"n_users": 40_000, "n_movies": 12_000, "min_user_ratings": 20, "seed": 7}  # bench_cofi.py's 5M shape

Fitter = Callable[[pd.DataFrame, pd.DataFrame, Params], Any]


def fit_cofi_rating(train: pd.DataFrame, movies: pd.DataFrame, params: Params) -> Any:
    from pipeline.models.cofi import CofiModel

    return CofiModel.fit(data(train, movies), params.cofi, progress=False).with_ranking(params.ranking)


def fit_content_rating(train: pd.DataFrame, movies: pd.DataFrame, params: Params) -> Any:
    from pipeline.features import build_features
    from pipeline.models.content import ContentModel

    features = build_features(train, movies, params.features.genre_prior)  # fitted on train only
    return ContentModel.fit(TrainingData(train, movies, SCALE, features), params.content).with_ranking(params.ranking)


def fit_content_ranking(train: pd.DataFrame, movies: pd.DataFrame, params: Params) -> Any:
    from pipeline.features import build_features
    from pipeline.models.content_retrieval import ContentRankingModel

    features = build_features(train, movies, params.features.genre_prior)  # fitted on train only
    return ContentRankingModel.fit(TrainingData(train, movies, SCALE, features), params.content_ranking)


MODELS: dict[str, Fitter] = {
    "popularity": lambda train, movies, params: PopularityModel.fit(data(train, movies)),
    "genre_affinity": lambda train, movies, params: GenreAffinityModel.fit(data(train, movies), params.evaluate.genre_affinity),
    "ease": lambda train, movies, params: EaseModel.fit(data(train, movies), params.evaluate.ease),
    "cofi_ranking": lambda train, movies, params: CofiRankingModel.fit(data(train, movies), params.cofi_ranking, progress=False),
    "content_ranking": fit_content_ranking,  # the content towers trained with an in-batch softmax
    "cofi_rating": fit_cofi_rating,  # the rating model (pipeline/models/cofi.py) ranked with ranking.shrinkage
    "content_rating": fit_content_rating,  # the rating model (pipeline/models/content.py), the same way
    "bias": lambda train, movies, params: BiasModel.fit(data(train, movies), params.evaluate.bias),  # RMSE's baseline
}


# ---- data -------------------------------------------------------------------------------------------


def movielens(mirror: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.data.movielens import read_csv_release

    if mirror is None or not (mirror / "ml-latest-small").is_dir():
        sys.exit(f"ml-latest-small not found under {mirror}: pass --mirror (a folder holding ml-latest-small/) or set RECSYS_DATA_MIRROR")
    return read_csv_release(mirror / "ml-latest-small")


def dataset(name: str, mirror: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, test, movies) of one benchmark dataset."""
    if name == "synthetic":
        from pipeline.data.synthetic import generate

        params = Params()
        ratings, movies = generate(params.data.synthetic)
        train, test = split_ratings(ratings, params.split.strategy, params.split.test_size, params.split.seed)
        return train, test, movies
    ratings, movies = movielens(mirror)
    strategy = name.split()[1] if " " in name else "random"
    train, test = split_ratings(ratings, strategy, 0.2, 42)
    return train, test, movies


DATASETS = ("ml-latest-small", "ml-latest-small temporal", "ml-latest-small cold_item", "synthetic")


# ---- one model --------------------------------------------------------------------------------------


def timed(fit: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    model = fit()
    return model, time.perf_counter() - wall, time.process_time() - cpu


def score(model: Any, train: pd.DataFrame, test: pd.DataFrame, new_movies_only: bool = False) -> dict[str, Any]:
    seen = SeenItems.from_ratings(train, model.catalogue)
    result, _ = evaluate_model(
        model, train, test, seen, k=K, relevance_threshold=THRESHOLD, cold_threshold=COLD, new_movies_only=new_movies_only
    )
    return result


def run_model(
    name: str, fit: Fitter, train: pd.DataFrame, test: pd.DataFrame, movies: pd.DataFrame, params: Params, new_movies_only: bool = False
) -> dict[str, Any]:
    try:
        model, wall, cpu = timed(lambda: fit(train, movies, params))
    except ModelSkipped as skipped:
        return {"model": name, "skipped": str(skipped)}
    return {"model": name, **score(model, train, test, new_movies_only), "fit_s": wall, "fit_cpu_s": cpu}


def table(rows: list[dict[str, Any]], baseline: str = "popularity") -> str:
    reference = next((r["ndcg_at_k"] for r in rows if r["model"] == baseline and "ndcg_at_k" in r), None)
    lines = [
        "| model | nDCG@10 | vs popularity | P@10 | R@10 | MAP@10 | coverage | RMSE | fit s (wall) | fit s (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['model']} | skipped: {row['skipped']} ||||||||")
            continue
        ratio = f"{row['ndcg_at_k'] / reference - 1:+.0%}" if reference else "-"
        rmse = f"{row['rmse']:.4f}" if "rmse" in row else "-"  # rating models only
        lines.append(
            f"| {row['model']} | {row['ndcg_at_k']:.4f} | {ratio} | {row['precision_at_k']:.4f} | {row['recall_at_k']:.4f} "
            f"| {row['map_at_k']:.4f} | {row['coverage']:.4f} | {rmse} | {row['fit_s']:.2f} | {row['fit_cpu_s']:.2f} |"
        )
    return "\n".join(lines)


class SyntheticOracle:
    """The generator's own odds on the synthetic data: P(the user picks the movie) x P(rated >= 4),
    from the hidden World (pipeline/data/synthetic.py). The pick probability is the generator's
    (`_Picker.weights`: popularity / favourite-genre mixture times the latent odds of p . q, over the
    movies released in the user's window); the noise of a rating does not depend on the pick. No
    model can know more; its row is the ceiling of the synthetic table. Dense users x movies (fine
    at the default 600 x 3,000)."""

    predicts_ratings = False

    def __init__(self, movies: pd.DataFrame, synthetic: SyntheticParams) -> None:
        from scipy.stats import norm

        from pipeline.data import synthetic as generator
        from pipeline.models.base import Catalogue

        world = generator.build_world(synthetic)
        users = np.arange(len(world.user_counts))
        n_genres = len(generator.GENRE_VOCABULARY)
        taste = np.concatenate((world.taste, np.zeros((len(users), 1), np.float32)), axis=1)
        genres = world.movie_genres
        affinity = sum(taste[:, genres[:, s]] for s in range(genres.shape[1])) / (genres < n_genres).sum(axis=1)
        stars = generator.GLOBAL_MEAN + world.user_bias[:, None] + world.movie_bias[None, :] + affinity
        stars = stars + world.user_factors @ world.movie_factors.T
        rounds_up_from = THRESHOLD - np.where(world.half_stars, 0.25, 0.5)[:, None]  # half-star and whole-star users
        at_least_4 = norm.sf((rounds_up_from - stars) / generator.NOISE_SD)
        self.scores = generator._Picker(world).weights(users) * at_least_4
        self.catalogue = Catalogue.from_movies(movies)  # ids are 1 + the World's indices

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        return self.scores[np.asarray(user_ids) - 1][:, self.catalogue.movie_ids - 1]


def benchmark(datasets: list[str], models: list[str], mirror: Path | None) -> None:
    params = Params()
    for name in datasets:
        train, test, movies = dataset(name, mirror)
        shelf = name.endswith("cold_item")  # candidates: the movies without a training rating (evaluate's rule)
        rows = [run_model(model, MODELS[model], train, test, movies, params, shelf) for model in models]
        if name == "synthetic":
            oracle = lambda t, m, p: SyntheticOracle(m, p.data.synthetic)  # noqa: E731
            rows.append(run_model("oracle (the generator's odds)", oracle, train, test, movies, params))
        users = rows[0].get("n_ranked_users", "-")
        print(f"\n### {name}: {len(train):,} train / {len(test):,} test ratings, {len(movies):,} movies, {users} ranked users\n")
        print(table(rows), flush=True)


# ---- --genres: new users described by genre tastes ------------------------------------------------

PROFILES = {
    "Animation=5": ["Animation"],
    "Horror=5": ["Horror"],
    "Romance=5": ["Romance"],
    "Sci-Fi=5": ["Sci-Fi"],
    "Documentary=5": ["Documentary"],
    "Animation=5, Children=5": ["Animation", "Children"],
    "Horror=5, Thriller=5": ["Horror", "Thriller"],
    "Action=5, Sci-Fi=5": ["Action", "Sci-Fi"],
    "Comedy=5, Romance=5": ["Comedy", "Romance"],
    "Horror=5, Romance=1, Children=1": ["Horror"],
}


def genre_profiles(mirror: Path | None) -> None:
    """For each profile: how many of the content ranking model's top 10 carry a liked genre, and the
    median training rating count of the listed movies (not obscure); trained on the ml-latest-small
    train split."""
    from pipeline.data.schema import GENRES, MOVIE

    train, _, movies = dataset("ml-latest-small", mirror)
    model = fit_content_ranking(train, movies, Params())
    counts = train[MOVIE].value_counts()
    genres = movies.set_index(MOVIE)[GENRES].str.split("|")
    print("| profile | top 10 in a liked genre | median training ratings of the 10 |\n|---|---|---|")
    for profile, liked in PROFILES.items():
        prefs = {name.strip(): float(value) for name, value in (part.split("=") for part in profile.split(","))}
        listed = model.recommend_for_genres(prefs, n=10)[MOVIE]
        hits = sum(bool(set(genres[m]) & set(liked)) for m in listed)
        print(f"| {profile} | {hits}/10 | {int(np.median(counts.reindex(listed).fillna(0)))} |", flush=True)


# ---- --tune: the validation slice ---------------------------------------------------------------------


def cofi_ranking_variants() -> dict[str, CofiRankingParams]:
    """The defaults and what one change does."""
    default = CofiRankingParams()
    changes = {
        "every rating positive": {"positive_threshold": None},
        "confidence constant, alpha 13 (the same mean confidence)": {"confidence": "constant", "alpha": 13.0},
        "alpha x0.5": {"alpha": default.alpha / 2},
        "alpha x2": {"alpha": default.alpha * 2},
        "lambda_ x0.5": {"lambda_": default.lambda_ / 2},
        "lambda_ x2": {"lambda_": default.lambda_ * 2},
        "reg_exponent 0.5, lambda_ 2": {"reg_exponent": 0.5, "lambda_": 2.0},
        "reg_exponent 0 (one lambda for every row), lambda_ 20": {"reg_exponent": 0.0, "lambda_": 20.0},
        "movie_bias": {"movie_bias": True},
        "num_features 32": {"num_features": 32},
        "num_features 128": {"num_features": 128},
        "iterations 10": {"iterations": 10},
        "iterations 25": {"iterations": 25},
        "cg_steps 2": {"cg_steps": 2},
        "cg_steps 0 (exact solves)": {"cg_steps": 0},
    }
    return {"defaults": default, **{label: default.model_copy(update=change) for label, change in changes.items()}}


def content_ranking_variants() -> dict[str, dict[str, Any]]:
    """One change at a time from the content_ranking defaults."""
    return {
        "defaults": {},
        "logq_correction off": {"logq_correction": False},
        "no id embedding, no history": {"id_dim": 0, "history": False},
        "no history bag": {"history": False},
        "temperature 0.05": {"temperature": 0.05},
        "popularity_prior 0": {"popularity_prior": 0.0},
        "epochs 8": {"epochs": 8},
        "epochs 10": {"epochs": 10},
        "epochs 7": {"epochs": 7},
        "epochs 5": {"epochs": 5},
        "epochs 4": {"epochs": 4},
        "epochs 6, learning_rate 0.01": {"epochs": 6, "learning_rate": 0.01},
        "batch_size 512": {"batch_size": 512},
        "batch_size 1024": {"batch_size": 1024},
        "batch_size 1024, epochs 20": {"batch_size": 1024, "epochs": 20},
        "history_length 128": {"history_length": 128},
    }


def tune(mirror: Path | None, models: list[str]) -> None:
    ratings, movies = movielens(mirror)
    train, _ = split_ratings(ratings, "random", 0.2, 42)
    inner, validation = split_ratings(train, "random", 0.2, 7)
    print(f"validation: fit on {len(inner):,}, scored on {len(validation):,} ratings of the train split (never the test split)")
    params = Params()
    candidates: dict[str, Fitter] = {"popularity": MODELS["popularity"]}
    if "cofi_ranking" in models:
        for label, variant in cofi_ranking_variants().items():
            candidates[f"cofi_ranking, {label}"] = lambda t, m, p, v=variant: CofiRankingModel.fit(data(t, m), v, progress=False)
    if "ease" in models:
        for lambda_ in (100.0, 200.0, 500.0, 1000.0):
            for threshold in (None, 4.0):
                candidates[f"ease, lambda_ {lambda_:g}, positive_threshold {threshold}"] = lambda t, m, p, lam=lambda_, h=threshold: (
                    EaseModel.fit(data(t, m), EaseParams(lambda_=lam, positive_threshold=h))
                )
    if "content_ranking" in models:
        for label, change in content_ranking_variants().items():
            candidates[f"content_ranking, {label}"] = lambda t, m, p, c=change: fit_content_ranking(
                t, m, p.model_copy(update={"content_ranking": p.content_ranking.model_copy(update=c)})
            )
    if "genre_affinity" in models:
        for prior in (0.0, 1.0, 5.0, 20.0, 100.0, 1000.0):
            candidates[f"genre_affinity, prior {prior:g}"] = lambda t, m, p, q=prior: GenreAffinityModel.fit(
                data(t, m), GenreAffinityParams(prior=q)
            )
    rows = []
    for label, fit in candidates.items():
        rows.append(run_model(label, fit, inner, validation, movies, params))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))


# ---- --adam: the same objective by gradient descent ------------------------------------------------


def adam_fit(train: pd.DataFrame, movies: pd.DataFrame, params: CofiRankingParams, steps: int, learning_rate: float) -> CofiRankingModel:
    """J of pipeline/models/cofi_ranking.py (Gramian form, no movie bias) minimized by full-batch Adam."""
    import tensorflow as tf

    from pipeline.models.base import Catalogue
    from pipeline.models.cofi_ranking import History, initial_factors, interactions, regularization

    catalogue = Catalogue.from_movies(movies)
    data = interactions(train, catalogue, params, "train")
    start = initial_factors(data.by_user.n_rows, data.by_movie.n_rows, params)
    W, X = tf.Variable(start["W"]), tf.Variable(start["X"])
    b = tf.Variable(start["b"])
    rows, cols = tf.constant(data.by_user.rows), tf.constant(data.by_user.indices)
    c = tf.constant(1.0 + data.by_user.weight)
    lambda_u, lambda_m = tf.constant(regularization(data.by_user, params)), tf.constant(regularization(data.by_movie, params))
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            U = tf.concat([W, b[:, None]], axis=1)
            V = tf.concat([X, tf.ones_like(X[:, :1])], axis=1)
            every_cell = tf.reduce_sum(tf.matmul(U, U, transpose_a=True) * tf.matmul(V, V, transpose_a=True))
            s = tf.reduce_sum(tf.gather(U, rows) * tf.gather(V, cols), axis=1)
            positives = tf.reduce_sum(c * (1.0 - s) ** 2 - s**2)
            penalty = tf.reduce_sum(lambda_u * tf.reduce_sum(W**2, axis=1)) + tf.reduce_sum(lambda_m * tf.reduce_sum(X**2, axis=1))
            cost = every_cell + positives + penalty
        optimizer.apply_gradients(zip(tape.gradient(cost, [W, X, b]), [W, X, b], strict=True))
        return cost

    history = History(cost=[float(step()) for _ in range(steps)])
    factors = {"W": W.numpy(), "X": X.numpy(), "b": b.numpy()}
    return CofiRankingModel(
        user_ids=data.user_ids, factors=factors, catalogue=catalogue, seen=SeenItems.from_ratings(train, catalogue),
        params=params, rating_range=RANGE, history=history,
    )  # fmt: skip


def adam(mirror: Path | None) -> None:
    ratings, movies = movielens(mirror)
    train, _ = split_ratings(ratings, "random", 0.2, 42)
    inner, validation = split_ratings(train, "random", 0.2, 7)
    params = CofiRankingParams(movie_bias=False)
    started = time.perf_counter()
    import tensorflow  # noqa: F401

    print(f"import tensorflow: {time.perf_counter() - started:.1f} s")
    rows = [
        run_model(
            "ALS (defaults)", lambda t, m, p: CofiRankingModel.fit(data(t, m), params, progress=False), inner, validation, movies, Params()
        )
    ]
    for steps in (50, 200):
        for learning_rate in (0.003, 0.01, 0.03):
            label = f"Adam, {steps} full-batch steps, learning rate {learning_rate:g}"
            rows.append(
                run_model(
                    label, lambda t, m, p, s=steps, r=learning_rate: adam_fit(t, m, params, s, r), inner, validation, movies, Params()
                )
            )
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\nvalidation slice of the train split:\n\n" + table(rows, baseline=""))


# ---- --memory: a large synthetic fit ----------------------------------------------------------------


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(n_ratings: int) -> None:
    """Runs in a child process: prints one JSON line."""
    from pipeline.data.synthetic import generate

    ratings, movies = generate(SyntheticParams(n_ratings=n_ratings, **MEMORY_DATA))
    before = peak_rss_mib()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    params = CofiRankingParams()
    fits = {}
    for iterations in (1, 3):
        model, wall, cpu = timed(
            lambda n=iterations: CofiRankingModel.fit(data(ratings, movies), params.model_copy(update={"iterations": n}), progress=False)
        )
        fits[iterations] = (wall, cpu)
    print(json.dumps({
        "ratings": len(ratings), "users": int(ratings["user_id"].nunique()), "movies": len(movies),
        "positives": int((ratings["rating"] >= (params.positive_threshold or -np.inf)).sum()),
        "peak_rss_before_fit_mib": before, "peak_rss_fit_mib": peak_rss_mib(),
        "fit_1_s": fits[1][0], "fit_3_s": fits[3][0], "s_per_iteration": (fits[3][0] - fits[1][0]) / 2,
        "cpu_s_per_iteration": (fits[3][1] - fits[1][1]) / 2, "cost": model.history.cost,
    }))  # fmt: skip


def content_memory_child(n_ratings: int) -> None:
    """content_ranking on the same data, one epoch (its memory does not grow with epochs: the
    batches stream; the tables are built once); prints one JSON line."""
    from pipeline.data.synthetic import generate

    ratings, movies = generate(SyntheticParams(n_ratings=n_ratings, **MEMORY_DATA))
    before = peak_rss_mib()
    Path("/proc/self/clear_refs").write_text("5")
    params = Params()
    params = params.model_copy(update={"content_ranking": params.content_ranking.model_copy(update={"epochs": 1})})
    _, wall, cpu = timed(lambda: fit_content_ranking(ratings, movies, params))
    print(json.dumps({
        "model": "content_ranking", "ratings": len(ratings), "users": int(ratings["user_id"].nunique()), "movies": len(movies),
        "peak_rss_before_fit_mib": before, "peak_rss_fit_mib": peak_rss_mib(), "features_and_1_epoch_s": wall, "cpu_s": cpu,
    }))  # fmt: skip


def memory(n_ratings: int, model: str) -> None:
    flag = "--memory-child" if model == "cofi_ranking" else "--content-memory-child"
    output = subprocess.run([sys.executable, __file__, flag, str(n_ratings)], check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_mirror = os.environ.get("RECSYS_DATA_MIRROR")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=Path(env_mirror) if env_mirror else None,
        help="folder holding ml-latest-small/ (default: env RECSYS_DATA_MIRROR)",
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--tune", action="store_true", help="validation figures of the defaults (ml-latest-small train split only)")
    parser.add_argument("--adam", action="store_true", help="ALS vs Adam on the same objective (validation slice)")
    parser.add_argument("--memory", type=int, metavar="N_RATINGS", help="peak memory and speed on N synthetic ratings")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--content-memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--genres", action="store_true", help="content_ranking's lists for new users described by genre tastes")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
    elif args.content_memory_child:
        content_memory_child(args.content_memory_child)
    elif args.memory:
        memory(args.memory, "content_ranking" if args.models == ["content_ranking"] else "cofi_ranking")
    elif args.tune:
        tune(args.mirror, args.models)
    elif args.adam:
        adam(args.mirror)
    elif args.genres:
        genre_profiles(args.mirror)
    else:
        benchmark(args.datasets, args.models, args.mirror)


if __name__ == "__main__":
    main()
