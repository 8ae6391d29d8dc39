"""The metrics of the evaluation protocol, defined once: name, column label, direction, kind.

Read by the evaluate stage's report, `recsys compare`, the promotion gate (pipeline/registry.py)
and the validation of `promote.metric` (pipeline/config.py). Plain data with no heavy imports, so
params validation stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

RATING = "rating"  # computed from predicted ratings (models with predicts_ratings only)
RANKING = "ranking"  # computed from each ranked user's top-k list
KINDS = (RATING, RANKING)


@dataclass(frozen=True)
class Metric:
    name: str  # key in a flattened evaluation result: evaluation.json nests cold_* under "cold"
    label: str  # column header; "{k}" stands for the list length
    lower_is_better: bool
    kind: str  # RATING or RANKING
    # May be promote.metric. Not coverage (a list of random movies maximizes it) nor the cold
    # metrics (measured on a subset of the test split that can be empty).
    promotable: bool = True

    def header(self, k: int | str) -> str:
        """The column label for lists of length `k` ("k" where runs may differ in k)."""
        return self.label.format(k=k)


METRICS = (
    Metric("rmse", "RMSE", True, RATING),
    Metric("mae", "MAE", True, RATING),
    Metric("precision_at_k", "P@{k}", False, RANKING),
    Metric("recall_at_k", "R@{k}", False, RANKING),
    Metric("ndcg_at_k", "nDCG@{k}", False, RANKING),
    Metric("map_at_k", "MAP@{k}", False, RANKING),
    Metric("coverage", "coverage", False, RANKING, promotable=False),
    Metric("cold_rmse", "cold RMSE", True, RATING, promotable=False),
    Metric("cold_mae", "cold MAE", True, RATING, promotable=False),
)
BY_NAME = {metric.name: metric for metric in METRICS}
PROMOTION_METRICS = tuple(metric.name for metric in METRICS if metric.promotable)
RANKING_PROMOTION_METRICS = tuple(metric.name for metric in METRICS if metric.promotable and metric.kind == RANKING)


def metric(name: str) -> Metric:
    """The table entry of `name`, or a ValueError listing the known names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(BY_NAME)}") from None
