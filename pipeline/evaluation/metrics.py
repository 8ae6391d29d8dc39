"""Evaluation metrics: pure functions, DataFrames in and floats out, each guarding its columns.

Rating metrics take a frame with `rating` (actual) and `prediction` columns. Ranking metrics take
the top-k lists (`top_k_items`: user_id, movie_id, rank 0-based) and the relevant test pairs
(`relevant_items`); they are averaged over the *ranked users*: users with at least one relevant
test movie (a ranked user with no list, e.g. no candidate left, scores 0).

Ranking protocol (README): candidates are all catalogue movies the user did not rate in train
(`seen_items`), or, when the split holds out movies (cold_item), only the movies nobody rated in
train; relevant = test rating >= threshold; binary relevance; ties in score go to the lower movie_id.
- precision@k = hits in the top k / k (also when fewer than k candidates remain)
- recall@k    = hits / number of relevant test movies
- nDCG@k      = sum over hits of 1/log2(rank + 2) / the same sum for a perfect list of min(n_rel, k) hits
- MAP@k       = sum over hits of precision at that rank / min(n_rel, k)
- coverage    = distinct movies in anyone's top k / catalogue size
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError
from pipeline.evaluation import metric_table
from pipeline.models.base import Catalogue, Recommender, SeenItems, index_of, top_n

PREDICTION = "prediction"
RANK = "rank"
# Users per score block: about this many (user, movie) cells, so memory stays bounded.
BLOCK_CELLS = 2_000_000
ACTIVITY_EDGES = (0, 1, 5, 10, 20, 50, 100, 200, 500)

ScoreBlock = Callable[[np.ndarray], np.ndarray]


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    """A DataError naming the missing columns of `frame`."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")


# ---- rating metrics --------------------------------------------------------------------------
def _errors(scored: pd.DataFrame) -> np.ndarray:
    require_columns(scored, (RATING, PREDICTION), "rating metrics input")
    if len(scored) == 0:
        raise DataError("rating metrics input: no rows to score")
    errors = scored[PREDICTION].to_numpy(np.float64) - scored[RATING].to_numpy(np.float64)
    if not np.isfinite(errors).all():
        bad = int((~np.isfinite(errors)).sum())
        raise DataError(f"rating metrics input: {bad} rows have a missing or infinite rating or prediction")
    return errors


def rmse(scored: pd.DataFrame) -> float:
    """Root mean squared error of `prediction` against `rating`."""
    return float(np.sqrt(np.mean(_errors(scored) ** 2)))


def mae(scored: pd.DataFrame) -> float:
    """Mean absolute error of `prediction` against `rating`."""
    return float(np.mean(np.abs(_errors(scored))))


# ---- ranking ---------------------------------------------------------------------------------
def block_rows(n_movies: int, block_cells: int = BLOCK_CELLS) -> int:
    """How many users fit in one score block of about `block_cells` cells."""
    return max(1, block_cells // max(n_movies, 1))


def top_k_items(
    score_block: ScoreBlock,
    catalogue: Catalogue,
    seen: SeenItems,
    user_ids: np.ndarray,
    k: int,
    block_cells: int = BLOCK_CELLS,
    excluded: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each user's k best unseen movies: DataFrame[user_id, movie_id, rank], best first.

    Scores come from `score_block(users)` (users x catalogue) one block of users at a time;
    memory is O(block_cells + users x k). Users with fewer than k candidates get shorter lists.
    `excluded`: catalogue positions no user is offered (a bool per catalogue movie), besides each
    user's own training movies.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    n_movies = len(catalogue)
    rows = block_rows(n_movies, block_cells)
    picks = np.empty((len(user_ids), k), dtype=np.int64)
    for start in range(0, len(user_ids), rows):
        users = user_ids[start : start + rows]
        scores = np.asarray(score_block(users), dtype=np.float64)
        if scores.shape != (len(users), n_movies):
            raise ModelError(f"score_block returned shape {scores.shape}, expected {(len(users), n_movies)}")
        if np.isnan(scores).any():
            raise ModelError(f"score_block returned {int(np.isnan(scores).sum())} NaN scores")
        mask = seen.mask(users, n_movies)
        if excluded is not None:
            mask |= excluded[None, :]
        picks[start : start + len(users)] = top_n(scores, k, mask)
    keep = picks >= 0
    return pd.DataFrame(
        {
            USER: np.repeat(user_ids, k)[keep.ravel()],
            MOVIE: catalogue.movie_ids[picks[keep]],
            RANK: np.tile(np.arange(k, dtype=np.int64), len(user_ids))[keep.ravel()],
        }
    )


def relevant_items(test: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The test pairs rated at least `threshold`: DataFrame[user_id, movie_id] (duplicates dropped)."""
    require_columns(test, (USER, MOVIE, RATING), "test ratings")
    relevant = test.loc[test[RATING].to_numpy(np.float64) >= threshold, [USER, MOVIE]]
    return relevant.drop_duplicates().reset_index(drop=True)


def ranked_users(relevant: pd.DataFrame) -> np.ndarray:
    """Users with at least one relevant test movie, sorted."""
    return np.unique(relevant[USER].to_numpy(np.int64))


def hit_matrix(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits, n_relevant): hits[u, r] is True when ranked user u's movie at rank r is relevant.

    Rows follow `ranked_users(relevant)`; list entries of other users or at rank >= k are ignored.
    """
    require_columns(top_k, (USER, MOVIE, RANK), "top-k lists")
    require_columns(relevant, (USER, MOVIE), "relevant items")
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    users = ranked_users(relevant)
    if len(users) == 0:
        raise DataError("relevant items: no test rating reaches the relevance threshold, so no user can be ranked")
    n_relevant = np.bincount(index_of(relevant[USER].to_numpy(np.int64), users), minlength=len(users))
    lists = top_k[top_k[RANK].to_numpy() < k]
    matched = lists.merge(relevant[[USER, MOVIE]].drop_duplicates(), on=[USER, MOVIE], how="inner")
    hits = np.zeros((len(users), k), dtype=bool)
    rows = index_of(matched[USER].to_numpy(np.int64), users)
    keep = rows >= 0
    hits[rows[keep], matched[RANK].to_numpy(np.int64)[keep]] = True
    return hits, n_relevant


def per_user_metrics(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> pd.DataFrame:
    """precision, recall, ndcg and ap at k of each ranked user: DataFrame[user_id, precision, recall, ndcg, ap]."""
    hits, n_relevant = hit_matrix(top_k, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    n_hits = hits.sum(axis=1)
    best_possible = np.minimum(n_relevant, k)
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return pd.DataFrame(
        {
            USER: ranked_users(relevant),
            "precision": n_hits / k,
            "recall": n_hits / n_relevant,
            "ndcg": (hits * discounts).sum(axis=1) / np.cumsum(discounts)[best_possible - 1],
            "ap": (precision_at_rank * hits).sum(axis=1) / best_possible,
        }
    )


def precision_at_k(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> float:
    return float(per_user_metrics(top_k, relevant, k)["precision"].mean())


def recall_at_k(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> float:
    return float(per_user_metrics(top_k, relevant, k)["recall"].mean())


def ndcg_at_k(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> float:
    return float(per_user_metrics(top_k, relevant, k)["ndcg"].mean())


def map_at_k(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int) -> float:
    return float(per_user_metrics(top_k, relevant, k)["ap"].mean())


def coverage(top_k: pd.DataFrame, n_catalogue: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    require_columns(top_k, (MOVIE,), "top-k lists")
    if n_catalogue < 1:
        raise DataError("coverage: the catalogue is empty")
    return float(top_k[MOVIE].nunique() / n_catalogue)


def ranking_metrics(top_k: pd.DataFrame, relevant: pd.DataFrame, k: int, n_catalogue: int) -> dict[str, float | int]:
    """All ranking metrics of the protocol at once."""
    per_user = per_user_metrics(top_k, relevant, k)
    return {
        "precision_at_k": float(per_user["precision"].mean()),
        "recall_at_k": float(per_user["recall"].mean()),
        "ndcg_at_k": float(per_user["ndcg"].mean()),
        "map_at_k": float(per_user["ap"].mean()),
        "coverage": coverage(top_k, n_catalogue),
        "n_ranked_users": len(per_user),
    }


# ---- cold start and activity ----------------------------------------------------------------
def train_counts(ids: np.ndarray, train_ids: np.ndarray) -> np.ndarray:
    """Number of training rows of each id in `ids` (0 for ids absent from train)."""
    known, counts = np.unique(np.asarray(train_ids, np.int64), return_counts=True)
    pos = index_of(np.asarray(ids, np.int64), known)
    return np.where(pos >= 0, counts[np.maximum(pos, 0)], 0) if len(known) else np.zeros(len(pos), np.int64)


def cold_mask(test: pd.DataFrame, train: pd.DataFrame, threshold: int) -> np.ndarray:
    """True for test ratings whose user or movie has fewer than `threshold` training ratings."""
    require_columns(test, (USER, MOVIE), "test ratings")
    require_columns(train, (USER, MOVIE), "training ratings")
    user_counts = train_counts(test[USER].to_numpy(), train[USER].to_numpy())
    movie_counts = train_counts(test[MOVIE].to_numpy(), train[MOVIE].to_numpy())
    return (user_counts < threshold) | (movie_counts < threshold)


def activity_labels(edges: tuple[int, ...] = ACTIVITY_EDGES) -> list[str]:
    """'0', '1-4', ..., '500+' for bins [edges[i], edges[i+1])."""
    labels = [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f"{edges[-1]}+"]


def activity_bin(counts: np.ndarray, edges: tuple[int, ...] = ACTIVITY_EDGES) -> np.ndarray:
    """Bin label of each user's number of training ratings."""
    labels = np.array(activity_labels(edges))
    return labels[np.searchsorted(np.asarray(edges), counts, side="right") - 1]


def error_by_activity(scored: pd.DataFrame, user_train_counts: np.ndarray) -> pd.DataFrame:
    """RMSE and MAE per bin of the user's training ratings: DataFrame[activity, n_test_ratings, rmse, mae].

    Bins with no test rating are left out; rows follow the bin order.
    """
    errors = _errors(scored)
    bins = activity_bin(np.asarray(user_train_counts))
    grouped = pd.DataFrame({"activity": bins, "sq": errors**2, "abs": np.abs(errors)}).groupby("activity", sort=False)
    table = grouped.agg(n_test_ratings=("sq", "size"), mse=("sq", "mean"), mae=("abs", "mean"))
    order = [label for label in activity_labels() if label in table.index]
    table = table.loc[order]
    return pd.DataFrame(
        {
            "activity": order,
            "n_test_ratings": table["n_test_ratings"].to_numpy(np.int64),
            "rmse": np.sqrt(table["mse"].to_numpy()),
            "mae": table["mae"].to_numpy(),
        }
    )


# ---- one model, the whole protocol ------------------------------------------------------------
def scored_frame(test: pd.DataFrame, predictions: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({RATING: test[RATING].to_numpy(np.float64), PREDICTION: np.asarray(predictions, np.float64)})


def seen_items(train: pd.DataFrame, catalogue: Catalogue) -> SeenItems:
    """Each user's training movies over `catalogue`: the protocol never offers them as candidates.

    Training ratings of movies outside the catalogue (a registered model trained on earlier data of
    the same source may not know every movie) cannot be candidates anyway and are left out.
    """
    known = train[catalogue.index(train[MOVIE].to_numpy(np.int64)) >= 0]
    return SeenItems.from_ratings(known, catalogue)


def rated_in_train(train: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """A bool per catalogue movie: True when it has at least one training rating."""
    positions = catalogue.index(train[MOVIE].to_numpy(np.int64))
    return np.bincount(positions[positions >= 0], minlength=len(catalogue)) > 0


def evaluate_model(
    model: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    seen: SeenItems | None = None,
    *,
    k: int,
    relevance_threshold: float,
    cold_threshold: int,
    block_cells: int = BLOCK_CELLS,
    cold: np.ndarray | None = None,
    kinds: Collection[str] = metric_table.KINDS,
    new_movies_only: bool = False,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """The evaluation.json object of one model, and its test predictions (None for ranking-only models).

    The one protocol of the evaluate stage and of promote (which scores a registered champion with
    it). `seen`: `seen_items(train, model.catalogue)`, computed here when not given (the evaluate
    stage computes it once for all models). Rating metrics are skipped when `model.predicts_ratings`
    is False. `cold`: the `cold_mask` of these ratings when already computed (it is the same for
    every model). `kinds`: which metrics to compute (metric_table.RATING, RANKING), all by default.
    `new_movies_only` (split.strategy cold_item): the candidates are the movies without a training
    rating, a new-releases shelf; every movie with one is excluded for every user and every model.
    """
    if len(test) == 0:
        raise DataError("test ratings: no rows, nothing to evaluate")
    result: dict[str, Any] = {}
    cold = cold_mask(test, train, cold_threshold) if cold is None else cold
    cold_result: dict[str, Any] = {}
    predictions = None
    if metric_table.RATING in kinds and model.predicts_ratings:
        predictions = np.asarray(model.predict(test[[USER, MOVIE]]), dtype=np.float64)
        scored = scored_frame(test, predictions)
        result.update(rmse=rmse(scored), mae=mae(scored))
        cold_scored = scored[cold]
        empty = len(cold_scored) == 0
        cold_result.update(rmse=None if empty else rmse(cold_scored), mae=None if empty else mae(cold_scored))
    if metric_table.RANKING in kinds:
        seen = seen_items(train, model.catalogue) if seen is None else seen
        relevant = relevant_items(test, relevance_threshold)
        excluded = rated_in_train(train, model.catalogue) if new_movies_only else None
        top_k = top_k_items(model.score_block, model.catalogue, seen, ranked_users(relevant), k, block_cells, excluded)
        result.update(ranking_metrics(top_k, relevant, k, len(model.catalogue)))
    result["n_test_ratings"] = len(test)
    if "n_ranked_users" in result:
        result["n_ranked_users"] = result.pop("n_ranked_users")
    result["cold"] = {**cold_result, "n_test_ratings": int(cold.sum())}
    return result, predictions


def flat_metrics(result: Mapping[str, Any], prefix: str = "test_") -> dict[str, float]:
    """{'rmse': .., 'cold': {'rmse': ..}} -> {'test_rmse': .., 'test_cold_rmse': ..}, numbers only."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, f"{prefix}{key}_"))
        elif value is not None:
            flat[f"{prefix}{key}"] = float(value)
    return flat
