"""Stage `promote`: register each newly trained model in the MLflow Model Registry and move `champion`
behind the metric gate of pipeline/registry.py.

Reads {metrics,records}/evaluation.json, records/train_<name>.json (the logged `model_uri`, its run and the
dataset fingerprint), data/split/{train,test}.parquet and data/raw/dataset.json (fingerprint and
source: the registered name is `recsys-<model>-<source>`); writes per model both scores and
`promoted` (1 when champion moved to it, else 0) to metrics/promotion.json, and the registered name,
versions, decision and reason to records/promotion.json; each version gets a short description (its run, data, test metrics,
decision and why) and a few tags (data source, dataset fingerprint, decision, the champion it was
compared with). Runs only after `evaluate` succeeded; a model without a usable
evaluation, a recorded training dataset or a finished training run is refused, never registered. Each
model gets the alias `challenger` as it is registered; every champion is scored before any `champion`
alias moves, so a tracking server that dies on the way leaves the champions as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import records, registry, tracking
from pipeline.choices import family_objective
from pipeline.config import Params
from pipeline.data.schema import conform_ratings
from pipeline.errors import ModelError, RecsysError
from pipeline.evaluation.metric_table import METRICS
from pipeline.evaluation.metrics import flat_metrics
from pipeline.io import atomic_outputs, read_json
from pipeline.models.loading import TRAINED_MODELS
from pipeline.paths import DEFAULT_LAYOUT, Layout
from pipeline.registry import CHALLENGER, CHAMPION, Decision, Refused
from pipeline.stages.inputs import check_trained_on, dataset_identity


@dataclass(frozen=True)
class Candidate:
    """A trained model that passed the gate's checks: what to register and its score on this split."""

    model: str
    model_uri: str
    run_id: str
    score: float
    tags: Mapping[str, str]
    result: Mapping[str, Any]  # its evaluation.json entry


def gate_metric(model: str, params: Params) -> str:
    """promote.metric for a rating model, promote.ranking_metric for a ranking model."""
    predicts_ratings = model not in TRAINED_MODELS or family_objective(model)[1] == "rating"  # by name: imports no model
    return registry.gate_metric(predicts_ratings, params.promote.metric, params.promote.ranking_metric)


def candidate(model: str, evaluation: Mapping[str, Any], dataset: Mapping[str, Any], metric: str, layout: Layout) -> Candidate:
    """The model's registration request, or Refused saying why it must not be registered."""
    score = registry.challenger_score(evaluation, model, metric, str(layout.evaluation))
    file = str(layout.training_record(model))
    try:
        info = read_json(file)
    except (OSError, ValueError):
        raise Refused(f"{file}: missing or unreadable; the {model} model was not trained") from None
    missing = [key for key in ("model_uri", "mlflow_run_id") if not (isinstance(info, dict) and info.get(key))]
    if missing:
        raise Refused(f"{file}: no '{missing[0]}'; retrain the {model} model (dvc repro --force train_{model})")
    try:
        check_trained_on(info, dataset, model, layout)
    except ModelError as exc:
        raise Refused(f"{exc}; not registering it") from None
    tags = dataset_identity(dataset, layout.raw_meta)
    return Candidate(model, str(info["model_uri"]), str(info["mlflow_run_id"]), score, tags, evaluation[model])


def finished_run_name(client: Any, run_id: str, model: str) -> str:
    """The name of the model's training run, or Refused when that run did not finish."""
    info = client.get_run(run_id).info
    if info.status != "FINISHED":
        raise Refused(f"MLflow run {run_id} of {model} is {info.status}, not FINISHED; not registering it")
    return str(info.run_name)


VERDICTS = {"first": "promoted to champion", "promoted": "promoted to champion", "kept": "not promoted"}


def data_line(dataset: Mapping[str, Any], strategy: str, n_train: int, n_test: int) -> str:
    """'synthetic (fingerprint 3f2a9c1b0d4e), random split: 80,000 train / 20,000 test ratings'."""
    identity = f"{dataset['source']} (fingerprint {str(dataset['fingerprint'])[:12]})"
    return f"{identity}, {strategy} split: {n_train:,} train / {n_test:,} test ratings"


def test_line(result: Mapping[str, Any], k: int) -> str:
    """'RMSE 0.8641, MAE 0.6594, P@10 0.1297, ...': the metric table's metrics the evaluation holds."""
    flat = flat_metrics(result, prefix="")
    return ", ".join(f"{metric.header(k)} {flat[metric.name]:.4f}" for metric in METRICS if metric.name in flat)


def description(run_name: str, run_id: str, data: str, tests: str, decision: Decision) -> str:
    """A registered version's description: which run, which data, its test metrics, the gate's decision and why."""
    return "\n".join(
        [f"{run_name}, run {run_id}", f"data: {data}", f"test: {tests}", f"decision: {VERDICTS[decision.decision]}: {decision.reason}"]
    )


def read_split(layout: Layout) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    layout.require(layout.train, layout.test, layout.raw_meta, layout.evaluation, layout.record_of(layout.evaluation))
    train = conform_ratings(pd.read_parquet(layout.train), str(layout.train))
    test = conform_ratings(pd.read_parquet(layout.test), str(layout.test))
    return train, test, read_json(layout.raw_meta)


def first_decision(client: Any, found: Candidate, metric: str, source: str) -> Decision:
    """The first version of `recsys-<model>-<source>`; champions of other sources are named, never scored."""
    decision = registry.decide(metric, found.score, None, min_improvement=0.0)  # no champion: the margin is moot
    others = registry.other_source_champions(client, found.model, source)
    if not others:
        return decision
    return Decision(
        decision.decision,
        f"{decision.reason}; not compared with {', '.join(others)}: trained on another data source than "
        f"{source} (other user and movie ids), so each source keeps its own champion",
    )


def judge(client: Any, found: Candidate, params: Params, train: pd.DataFrame, test: pd.DataFrame, source: str, data: str) -> dict[str, Any]:
    """Register the candidate as challenger, score the champion on this split, decide (no champion
    move yet); `data` is the description's data_line."""
    metric, name = gate_metric(found.model, params), registry.registered_name(found.model, source)
    run_name = finished_run_name(client, found.run_id, found.model)
    version = registry.register(client, name, found.model_uri, found.run_id, found.tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    champion = registry.alias_version(client, name, CHAMPION)
    champion_score: float | None = None
    if champion is None:
        decision = first_decision(client, found, metric, source)
    elif str(champion.version) == str(version.version):
        champion_score = found.score
        decision = Decision("unchanged", f"version {version.version} is already champion")
    else:
        try:
            loaded = tracking.load_model(f"models:/{name}/{champion.version}")
            champion_score = registry.score(
                loaded, metric, train, test, params.evaluate, params.ranking, new_movies_only=params.split.strategy == "cold_item"
            )
        except RecsysError as exc:
            raise RecsysError(f"{name} champion v{champion.version} cannot be scored on this test split: {exc}") from None
        decision = registry.decide(metric, found.score, champion_score, params.promote.min_improvement, champion.version)
    if decision.decision != "unchanged":  # a version already champion keeps the record of how it became one
        tags = {"promotion_decision": decision.decision}
        if champion is not None:
            tags["compared_with_version"] = str(champion.version)
        registry.set_tags(client, name, version.version, tags)
        text = description(run_name, found.run_id, data, test_line(found.result, params.evaluate.k), decision)
        registry.describe(client, name, version.version, text)
    return {
        "registered_model": name,
        "data_source": source,
        "version": int(version.version),
        "metric": metric,
        "challenger_score": found.score,
        "champion_version": int(champion.version) if champion else None,
        "champion_score": champion_score,
        "decision": decision.decision,
        "reason": decision.reason,
    }


def refused(model: str, metric: str, reason: str, source: str) -> dict[str, Any]:
    return {
        "registered_model": registry.registered_name(model, source),
        "data_source": source,
        "version": None,
        "metric": metric,
        "challenger_score": None,
        "champion_version": None,
        "champion_score": None,
        "decision": "refused",
        "reason": reason,
    }


def judge_all(client: Any, params: Params, models: list[str], layout: Layout) -> dict[str, Any]:
    """Register and judge every model; no champion moves yet."""
    train, test, dataset = read_split(layout)
    source = dataset_identity(dataset, layout.raw_meta)["data_source"]
    data = data_line(dataset, params.split.strategy, len(train), len(test))
    evaluation = records.read(layout.evaluation, layout.record_of(layout.evaluation))
    results: dict[str, Any] = {}
    for model in models:
        metric = gate_metric(model, params)
        try:
            results[model] = judge(client, candidate(model, evaluation, dataset, metric, layout), params, train, test, source, data)
        except Refused as exc:
            results[model] = refused(model, metric, str(exc), source)
    return results


def move_champions(client: Any, results: Mapping[str, dict[str, Any]], moved: list[str]) -> None:
    """Point `champion` at each winner (appending its name to `moved`); record champion_after and promoted."""
    for entry in results.values():
        promoted = entry["decision"] in registry.MOVES_CHAMPION
        if promoted:
            client.set_registered_model_alias(entry["registered_model"], CHAMPION, entry["version"])
            moved.append(entry["registered_model"])
        entry["champion_after"] = entry["version"] if promoted or entry["decision"] == "unchanged" else entry["champion_version"]
        entry["promoted"] = int(promoted)


# Registry version numbers count registrations (a re-run registers again): records, not metrics.
RECORDED_NUMBERS = ("version", "champion_version", "champion_after")


def summary(results: Mapping[str, Any]) -> str:
    return "\n".join(f"promote {model}: {entry['decision']}: {entry['reason']}" for model, entry in results.items())


def run(params: Params, models: list[str] | None = None, layout: Layout = DEFAULT_LAYOUT) -> None:
    """`models` defaults to every trained model (cofi, content); tests pass their own."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from requests.exceptions import RequestException

    try:
        tracking.check_reachable()
    except RecsysError as exc:
        raise RecsysError(f"promote: {exc}; nothing registered, no alias moved") from None
    moved: list[str] = []
    try:
        tracking.configure(params.mlflow.experiment)
        client = MlflowClient()
        results = judge_all(client, params, models or list(TRAINED_MODELS), layout)
        move_champions(client, results, moved)
    except (MlflowException, RequestException) as exc:
        text = str(exc).strip()
        where = tracking.shown_uri(tracking.tracking_uri())
        aliases = f"champion moved only for {', '.join(moved)}" if moved else "no champion alias moved"
        raise RecsysError(
            f"promote: MLflow at {where} failed ({text.splitlines()[0] if text else type(exc).__name__}); "
            f"{aliases}; {layout.promotion} and {layout.record_of(layout.promotion)} not written"
        ) from None
    record = layout.record_of(layout.promotion)
    with atomic_outputs(layout.promotion, record) as (metrics_file, record_file):
        records.write(metrics_file, record_file, results, RECORDED_NUMBERS)
    print(summary(results))
