"""How much generic score adjustments (pipeline/models/ranking.py) improve top-10 lists.

    python benchmarks/bench_ranking.py                       # bias, cofi, content
    python benchmarks/bench_ranking.py --models bias cofi --mirror /path/to/mirror

Protocol: the ml-latest-small split of benchmarks/README.md. Settings are chosen on a validation split
carved out of train (random 20%, seed 7; models fitted on the remaining 80%), by nDCG@10 over a
grid of shrinkage x popularity_weight x min_support; the chosen settings are then scored once on
the test split with models refitted on the whole train split. Test figures are never used to
choose. Models use the project's default params (params.yaml defaults in pipeline/config.py).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import Params  # noqa: E402
from pipeline.data.movielens import read_csv_release  # noqa: E402
from pipeline.data.schema import RatingScale  # noqa: E402
from pipeline.evaluation.metrics import ranked_users, ranking_metrics, relevant_items, top_k_items  # noqa: E402
from pipeline.models.base import Catalogue, SeenItems, TrainingData  # noqa: E402
from pipeline.models.baselines import BiasModel, PopularityModel  # noqa: E402
from pipeline.models.ranking import adjust_scores  # noqa: E402
from pipeline.split import split_ratings  # noqa: E402

K, THRESHOLD = 10, 4.0
GRID = {
    "shrinkage": [0, 5, 10, 25, 50, 100, 200, 500],
    "popularity_weight": [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9],
    "min_support": [0, 5, 10, 20, 50],
}
OFF = {"shrinkage": 0, "popularity_weight": 0, "min_support": 0}
SCALE = RatingScale(0.5, 5.0, 0.5)


def fit(name: str, train: pd.DataFrame, movies: pd.DataFrame):
    params = Params()
    if name == "bias":
        return BiasModel.fit(TrainingData(train, movies, SCALE))
    if name == "popularity":
        return PopularityModel.fit(TrainingData(train, movies, SCALE))
    if name == "cofi":
        from pipeline.models.cofi import CofiModel

        return CofiModel.fit(TrainingData(train, movies, SCALE), params.cofi, progress=False)
    from pipeline.features import build_features
    from pipeline.models.content import ContentModel

    return ContentModel.fit(TrainingData(train, movies, SCALE, build_features(train, movies, params.features.genre_prior)), params.content)


def scorer(model, train: pd.DataFrame, test: pd.DataFrame):
    """(score(settings) -> ranking metrics on `test`, rmse) for a model fitted on `train`."""
    catalogue: Catalogue = model.catalogue
    seen = SeenItems.from_ratings(train, catalogue)
    relevant = relevant_items(test, THRESHOLD)
    users = ranked_users(relevant)
    block = model.score_block(users)
    support = np.bincount(catalogue.index(train["movie_id"].to_numpy()), minlength=len(catalogue))
    cells = block.size

    def score(settings: dict) -> dict:
        adjusted = adjust_scores(block, support, **settings)
        top = top_k_items(lambda _users: adjusted, catalogue, seen, users, K, block_cells=cells)
        return ranking_metrics(top, relevant, K, len(catalogue))

    rmse = None
    if getattr(model, "predicts_ratings", True):
        predictions = model.predict(test[["user_id", "movie_id"]])
        rmse = float(np.sqrt(np.mean((predictions - test["rating"].to_numpy()) ** 2)))
    return score, rmse


def choose(score) -> tuple[dict, pd.DataFrame]:
    """Best settings on validation by nDCG@10 (then P@10), and the whole grid's results."""
    rows = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values, strict=True))
        metrics = score(settings)
        rows.append({**settings, "ndcg": metrics["ndcg_at_k"], "precision": metrics["precision_at_k"]})
    grid = pd.DataFrame(rows)
    best = grid.sort_values(["ndcg", "precision"], ascending=False).iloc[0]
    return {key: best[key].item() for key in GRID}, grid


def best_single(grid: pd.DataFrame, key: str) -> dict:
    others = [k for k in GRID if k != key]
    alone = grid[(grid[others] == 0).all(axis=1)]
    best = alone.sort_values(["ndcg", "precision"], ascending=False).iloc[0]
    return {**OFF, key: best[key].item()}


def describe(settings: dict) -> str:
    parts = [f"{key}={value:g}" for key, value in settings.items() if value]
    return ", ".join(parts) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--models", nargs="+", default=["bias", "cofi", "content"], choices=["bias", "cofi", "content"])
    args = parser.parse_args()

    ratings, movies = read_csv_release(args.mirror / "ml-latest-small")
    train, test = split_ratings(ratings, "random", 0.2, 42)
    inner, validation = split_ratings(train, "random", 0.2, 7)
    print(f"split: {len(train):,} train / {len(test):,} test; validation: {len(inner):,} / {len(validation):,}\n")

    rows = []
    for split_name, fit_on, score_on in (("validation", inner, validation), ("test", train, test)):
        score, _ = scorer(fit("popularity", fit_on, movies), fit_on, score_on)
        metrics = score(OFF)
        rows.append(("popularity", split_name, "-", None, metrics))
    for name in args.models:
        start = time.perf_counter()
        score, _ = scorer(fit(name, inner, movies), inner, validation)
        chosen, grid = choose(score)
        singles = {key: best_single(grid, key) for key in GRID}
        grid.to_csv(Path("/tmp") / f"ranking_grid_{name}.csv", index=False)
        rows.append((name, "validation", "none", None, score(OFF)))
        rows.append((name, "validation", f"best: {describe(chosen)}", None, score(chosen)))
        score, rmse = scorer(fit(name, train, movies), train, test)
        for label, settings in (("none", OFF), *((f"{k} only", s) for k, s in singles.items()), ("best", chosen)):
            rows.append((name, "test", f"{label}: {describe(settings)}", rmse, score(settings)))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    print("| model | split | adjustment (chosen on validation) | RMSE | P@10 | R@10 | nDCG@10 | MAP@10 | coverage |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, split_name, label, rmse, m in rows:
        shown_rmse = f"{rmse:.4f}" if rmse is not None else "-"
        print(
            f"| {name} | {split_name} | {label} | {shown_rmse} | {m['precision_at_k']:.4f} | {m['recall_at_k']:.4f} "
            f"| {m['ndcg_at_k']:.4f} | {m['map_at_k']:.4f} | {m['coverage']:.4f} |"
        )


if __name__ == "__main__":
    main()
