"""Champion/challenger promotion in the MLflow Model Registry.

One registered model per trained model AND data source, `recsys-<model>-<source>` (e.g.
recsys-cofi-synthetic, recsys-cofi-ml-latest-small), so there is one champion per source: models
trained on different sources know different user and movie ids and are never compared. Each trained
model is registered as a version of its name with the alias `challenger`. The version holding the
alias `champion` is scored again on the CURRENT test split by the evaluate stage's own function
(pipeline/evaluation/metrics.py evaluate_model; the champion may have been trained on earlier data of
the same source, whose logged numbers would not be comparable), and `champion` moves only when the
challenger is better by at least `min_improvement`. The first version of a name becomes champion.

The gate (`decide`, `challenger_score`) is pure; the registry calls take an MlflowClient.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.choices import SOURCES
from pipeline.config import EvaluateParams
from pipeline.errors import DataError, ModelError
from pipeline.evaluation.metric_table import metric as metric_entry
from pipeline.evaluation.metrics import evaluate_model, flat_metrics
from pipeline.models.ranking import for_lists

PREFIX = "recsys-"
CHAMPION = "champion"
CHALLENGER = "challenger"
MOVES_CHAMPION = ("first", "promoted")


def source_slug(source: str) -> str:
    """'ml-latest-small' -> 'ml-latest-small', 'My Data' -> 'my-data': lower case, runs of other characters -> '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(source).lower()).strip("-")
    if not slug:
        raise DataError(f"data source {source!r} has no letter or digit to name a registered model with")
    return slug


def registered_name(model: str, source: str) -> str:
    """('cofi', 'ml-latest-small') -> 'recsys-cofi-ml-latest-small': one champion per model and data source."""
    return f"{PREFIX}{model}-{source_slug(source)}"


def model_alias_uri(model: str, source: str, alias: str = CHAMPION) -> str:
    """'models:/recsys-cofi-synthetic@champion'."""
    return f"models:/{registered_name(model, source)}@{alias}"


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
    return champion - challenger if metric_entry(metric).lower_is_better else challenger - champion


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


def gate_metric(predicts_ratings: bool, metric: str, ranking_metric: str) -> str:
    """What a model is judged by: a rating model by promote.metric, a ranking model (which
    predicts no ratings) by promote.ranking_metric."""
    return metric if predicts_ratings else ranking_metric


def challenger_score(evaluation: Mapping[str, Any], model: str, metric: str, file: str = "metrics/evaluation.json") -> float:
    """The model's `metric` from evaluation.json, or Refused naming what is missing."""
    result = evaluation.get(model)
    if not isinstance(result, Mapping):
        raise Refused(f"{file}: no entry for '{model}' (its evaluation failed or did not run); not registering it")
    if "skipped" in result:
        raise Refused(f"{file}: '{model}' was skipped ({result['skipped']}); not registering it")
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
    """The project model inside an MLflow pyfunc logged by tracking.log_model."""
    from pipeline.tracking import RecsysPyfunc

    try:
        wrapper = pyfunc_model.unwrap_python_model()
    except ValueError as exc:  # not a python-function model at all
        raise ModelError(f"registered model is not a recsys pyfunc ({exc}); cannot evaluate it") from None
    if not isinstance(wrapper, RecsysPyfunc):
        raise ModelError(f"registered model wraps {type(wrapper).__name__}, not a recsys pyfunc; cannot evaluate it")
    return wrapper.model


def score(
    pyfunc_model: Any,
    metric: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    evaluate: EvaluateParams,
    ranking: Any = None,
    new_movies_only: bool = False,
) -> float:
    """`metric` of a loaded pyfunc on this split, computed by the evaluate stage's `evaluate_model`.

    The same protocol as evaluate: candidates are the model's catalogue minus each user's training
    movies, relevance and k from `evaluate` (params.evaluate), ranked with `ranking` (params.ranking)
    as evaluate ranks (a ranking model by its raw scores), the candidates of a cold_item split
    (`new_movies_only`) as evaluate's. Only the metric's kind (rating or ranking) is computed.
    """
    model = for_lists(project_model(pyfunc_model), ranking)
    result, _ = evaluate_model(
        model,
        train,
        test,
        k=evaluate.k,
        relevance_threshold=evaluate.relevance_threshold,
        cold_threshold=evaluate.cold_threshold,
        kinds=(metric_entry(metric).kind,),
        new_movies_only=new_movies_only,
    )
    value = flat_metrics(result, prefix="").get(metric)
    if value is None:
        raise ModelError(f"{type(model).__name__} gives no {metric} (it does not predict ratings)")
    return value


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
        # MLflow prints "Successfully registered model ..." and "Created version ..." to stderr; promote
        # says what it registered in its own decision line
        with contextlib.redirect_stderr(io.StringIO()):
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


def describe(client: Any, name: str, version: Any, text: str) -> None:
    """Set the version's description (shown on its page in the MLflow UI)."""
    client.update_model_version(name, str(version), description=text)


def other_source_champions(client: Any, model: str, source: str) -> list[str]:
    """'recsys-cofi-synthetic v1' for each champion of `model` on a data source other than `source`."""
    names = {registered_name(model, other) for other in SOURCES} - {registered_name(model, source)}
    found = ((name, alias_version(client, name, CHAMPION)) for name in sorted(names))
    return [f"{name} v{version.version}" for name, version in found if version is not None]
