"""Turn predicted ratings into top-N lists people would accept.

Models trained on ratings put obscure movies with two or three high ratings on top. A model calls
`adjust_scores` inside its `score_block`, so `recommend` and the ranking metrics see the same
ranking, while `predict` (RMSE) stays untouched. Three generic, vectorized adjustments, applied in
this order (each off at its default):

1. shrinkage m: s' = (n s + m p) / (n + m), n = the movie's training ratings, p = the user's mean
   score over the catalogue: a movie needs support to stand out from the user's average.
2. popularity_weight w: s' = (1 - w) z(s) + w z(log(1 + n)), z standardizing each user's scores
   and the catalogue's log-popularity; w = 1 is the popularity ranking.
3. min_support c: movies with fewer than c training ratings are demoted below every other movie
   (kept in their order, so a list is still full when few movies qualify).
"""

from __future__ import annotations

import copy
from typing import Any, Self

import numpy as np


def _standardize(values: np.ndarray, axis: int) -> np.ndarray:
    mean = values.mean(axis=axis, keepdims=True)
    std = values.std(axis=axis, keepdims=True)
    return (values - mean) / np.where(std > 0, std, 1.0)


def adjust_scores(
    scores: np.ndarray,
    support: np.ndarray,
    *,
    shrinkage: float = 0.0,
    popularity_weight: float = 0.0,
    min_support: int = 0,
) -> np.ndarray:
    """Adjusted (users x movies) scores from a score block and each movie's training ratings."""
    scores = np.asarray(scores, dtype=np.float64)
    support = np.asarray(support, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(support):
        raise ValueError(f"scores {scores.shape} and support ({len(support)},) do not match")
    if shrinkage < 0 or not 0 <= popularity_weight <= 1 or min_support < 0:
        raise ValueError("need shrinkage >= 0, 0 <= popularity_weight <= 1, min_support >= 0")
    adjusted = scores
    if shrinkage > 0:
        prior = scores.mean(axis=1, keepdims=True)
        adjusted = (support * adjusted + shrinkage * prior) / (support + shrinkage)
    if popularity_weight > 0:
        popularity = _standardize(np.log1p(support), axis=0)
        adjusted = (1 - popularity_weight) * _standardize(adjusted, axis=1) + popularity_weight * popularity
    if min_support > 0:
        span = adjusted.max(axis=1, keepdims=True) - adjusted.min(axis=1, keepdims=True)
        adjusted = np.where(support < min_support, adjusted - span - 1.0, adjusted)
    return adjusted


class SupportRanking:
    """Mixin for models with `catalogue` and `seen`: rank top-N lists by adjusted scores.

    A model ranks by its raw scores; `with_ranking(params)` returns a copy that ranks by the
    adjusted ones. The evaluate stage and `recsys recommend` both rank with params.yaml's `ranking`
    section, so the lists people see are the lists the ranking metrics score. `predict` (and so
    RMSE) is never adjusted.
    """

    ranking: Any = None

    def with_ranking(self, ranking: Any) -> Self:
        """A copy that ranks by `adjust_scores` with ranking.shrinkage / popularity_weight /
        min_support (None: raw scores); this model is left as it was."""
        ranked = copy.copy(self)  # shallow: the trained arrays are shared, never written to
        object.__setattr__(ranked, "ranking", ranking)  # also for the frozen dataclasses (baselines)
        return ranked

    def movie_support(self) -> np.ndarray:
        """Training ratings per catalogue movie."""
        return np.bincount(self.seen.indices, minlength=len(self.catalogue))  # type: ignore[attr-defined]

    def rank_scores(self, scores: np.ndarray) -> np.ndarray:
        """Scores (users x catalogue) as ranked: adjusted when a ranking is set, else unchanged."""
        if self.ranking is None:
            return scores
        return adjust_scores(
            scores,
            self.movie_support(),
            shrinkage=self.ranking.shrinkage,
            popularity_weight=self.ranking.popularity_weight,
            min_support=self.ranking.min_support,
        )


def for_lists(model: Any, ranking: Any) -> Any:
    """The model as its top-N lists are ranked: a rating model by support-adjusted scores
    (`ranking`, params.yaml's section), a ranking model (predicts_ratings False) by its raw scores,
    which its objective already fitted to what users pick."""
    return model.with_ranking(ranking if model.predicts_ratings else None)
