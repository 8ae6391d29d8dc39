"""Champion/challenger promotion in the MLflow Model Registry.

Each trained model is registered as a version of `recsys-<name>` with the alias `challenger`. The
version holding the alias `champion` is scored again, by the functions of pipeline/evaluation/metrics.py,
on the CURRENT test split (the registry may hold versions trained on other data, whose logged numbers
would not be comparable), and `champion` moves only when the challenger is better by at least
`min_improvement`. The first version of a model becomes champion.

The gate (`decide`, `challenger_score`) is pure; the registry calls take an MlflowClient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.schema import MOVIE, USER
from pipeline.errors import ModelError
from pipeline.evaluation.metrics import (
    mae,
    ranked_users,
    ranking_metrics,
    relevant_items,
    rmse,
    scored_frame,
    top_k_items,
)
from pipeline.models.base import SeenItems

PREFIX = "recsys-"
CHAMPION = "champion"
CHALLENGER = "challenger"
LOWER_IS_BETTER = {"rmse": rmse, "mae": mae}
RANKING = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k")
MOVES_CHAMPION = ("first", "promoted")


def registered_name(model: str) -> str:
    """'cofi' -> 'recsys-cofi'."""
    return f"{PREFIX}{model}"


def model_alias_uri(model: str, alias: str = CHAMPION) -> str:
    """'models:/recsys-cofi@champion'."""
    return f"models:/{registered_name(model)}@{alias}"


# ---- the gate (pure) -------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What the gate decided: `decision` is first | promoted | kept | unchanged | refused."""

    decision: str
    reason: str

    @property
    def moves_champion(self) -> bool:
        return self.decision in MOVES_CHAMPION


class Refused(ModelError):
    """The gate will not register this model (its evaluation is missing or unusable)."""


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is: positive when better (lower rmse/mae, higher ranking metrics)."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def decide(metric: str, challenger: float, champion: float | None, min_improvement: float, champion_version: Any = None) -> Decision:
    """Promote only when strictly better by at least `min_improvement`; a tie keeps the champion."""
    if champion is None:
        return Decision("first", f"no champion yet: this version becomes champion ({metric} {challenger:.4f})")
    gain = improvement(metric, challenger, champion)
    versus = f"{metric} {challenger:.4f} vs champion v{champion_version} {champion:.4f} on this test split"
    if gain > 0 and gain >= min_improvement:
        return Decision("promoted", f"{versus}: better by {gain:.4g} >= min_improvement {min_improvement:g}")
    if gain > 0:
        return Decision("kept", f"{versus}: better by only {gain:.4g} < min_improvement {min_improvement:g}")
    return Decision("kept", f"{versus}: not better")


def challenger_score(evaluation: Mapping[str, Any], model: str, metric: str, file: str = "metrics/evaluation.json") -> float:
    """The model's `metric` from evaluation.json, or Refused naming what is missing."""
    result = evaluation.get(model)
    if not isinstance(result, Mapping):
        raise Refused(f"{file}: no entry for '{model}' (its evaluation failed or did not run); not registering it")
    value = result.get(metric)
    if value is None:
        raise Refused(f"{file}: '{model}' has no '{metric}' (the promote.metric); not registering it")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise Refused(f"{file}: '{model}' {metric} is not a number ({value!r}); not registering it") from None
    if not math.isfinite(score):
        raise Refused(f"{file}: '{model}' {metric} is {score}; not registering it")
    return score


# ---- scoring a registered model on the current split ----------------------------------------
def project_model(pyfunc_model: Any) -> Any:
    """The project model inside an MLflow pyfunc logged by tracking.log_model (for score_block)."""
    try:
        inner = pyfunc_model.unwrap_python_model().model
    except (AttributeError, ValueError) as exc:
        raise ModelError(f"registered model is not a recsys pyfunc ({exc}); cannot rank with it") from None
    if not hasattr(inner, "score_block") or not hasattr(inner, "catalogue"):
        raise ModelError(f"registered model {type(inner).__name__} has no score_block/catalogue; cannot rank with it")
    return inner


def score(
    pyfunc_model: Any,
    metric: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int,
    relevance_threshold: float,
    ranking: Any = None,
) -> float:
    """`metric` of a loaded pyfunc on this test split, by the evaluate stage's protocol.

    rmse/mae come from the pyfunc's predict; ranking metrics from the wrapped model's score_block
    over ITS catalogue, excluding the training movies it knows (another dataset's model may lack some),
    ranked with `ranking` (params.ranking) when the model supports it, as evaluate ranks.
    """
    if metric in LOWER_IS_BETTER:
        predictions = np.asarray(pyfunc_model.predict(test[[USER, MOVIE]]), dtype=np.float64)
        return LOWER_IS_BETTER[metric](scored_frame(test, predictions))
    if metric not in RANKING:
        raise ValueError(f"unknown promotion metric {metric!r}")
    model = project_model(pyfunc_model)
    if ranking is not None and hasattr(model, "with_ranking"):
        model = model.with_ranking(ranking)
    catalogue = model.catalogue
    known = train[catalogue.index(train[MOVIE].to_numpy(np.int64)) >= 0]
    seen = SeenItems.from_ratings(known, catalogue)
    relevant = relevant_items(test, relevance_threshold)
    top_k = top_k_items(model.score_block, catalogue, seen, ranked_users(relevant), k)
    return float(ranking_metrics(top_k, relevant, k, len(catalogue))[metric])


# ---- registry calls ----------------------------------------------------------------------------
def find_version(client: Any, name: str, model_uri: str, run_id: str) -> Any | None:
    """The version of `name` already registered from `model_uri`, if any (re-running promote is idempotent)."""
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    matches = [v for v in versions if v.source == model_uri]
    return max(matches, key=lambda v: int(v.version)) if matches else None


def register(client: Any, name: str, model_uri: str, run_id: str, tags: Mapping[str, str]) -> Any:
    """Register `model_uri` as a new version of `name` (or reuse the version that already holds it)."""
    import mlflow

    version = find_version(client, name, model_uri, run_id)
    if version is None:
        version = mlflow.register_model(model_uri, name, tags=dict(tags))
    else:
        set_tags(client, name, version.version, tags)
    return version


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The version holding `alias`, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_tags(client: Any, name: str, version: Any, tags: Mapping[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))
