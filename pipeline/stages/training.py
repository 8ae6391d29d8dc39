"""What every training stage does around its model: one MLflow run (`training_run`: its name, tags,
the train split as input dataset, params under their own and under family-independent names; then
a curve per iteration, its figure, the pyfunc model), then models/<name>/, metrics/train_<name>.json
(the numbers), records/train_<name>.json (run id, model URI, dataset, seconds) and the curve CSV
written together (nothing when training fails).

A stage describes its model with a `TrainingSpec` and calls `train(spec, params, layout)`; adding a
model to the pipeline is one spec, one stage module and one dvc.yaml stage.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import tracking
from pipeline.choices import family_objective
from pipeline.config import Params
from pipeline.data.schema import MOVIE, USER
from pipeline.features import load_features
from pipeline.models.base import TrainingData
from pipeline.paths import Layout
from pipeline.stages.inputs import dataset_identity, read_training_data, save_trained

ALS = "als"  # the learning_rate of a model fitted by alternating least squares, which has none
NO_PENALTY = "none"  # the regularization of a model without a weight penalty


@dataclass(frozen=True)
class Hyperparameters:
    """A model's settings under family-independent names, logged beside its own params section so
    that MLflow's compare view lines the families up."""

    latent_size: int  # num_features (cofi), embedding_dim (the content towers)
    learning_rate: float | str  # or ALS
    epochs: int  # passes over the training data: iterations, or at most that many epochs
    regularization: float | str  # the L2 strength lambda_, or NO_PENALTY
    seed: int


@dataclass(frozen=True)
class Curves:
    """The per-iteration values a fit recorded: `table` is the CSV (an `iteration` column first),
    `logged` the MLflow metric histories at `steps` (each logged as curve_<key>)."""

    table: pd.DataFrame
    logged: Mapping[str, list[float]]
    steps: list[int]


@dataclass(frozen=True)
class TrainingSpec:
    name: str  # models/<name>/, {metrics,records}/train_<name>.json, plots/<name>_<curve>.csv, the run's `model` tag (choices.FAMILIES)
    logged_params: Callable[[Params], dict[str, Any]]  # the params.yaml sections the fit reads
    hyperparameters: Callable[[Params], Hyperparameters]
    fit: Callable[[TrainingData, Params, Layout], Any]
    curves: Callable[[Any], Curves]
    train_metrics: Callable[[Any, TrainingData], dict[str, Any]]  # besides seconds, sizes, run id, data
    figure: Callable[[Curves], Any]  # a matplotlib Figure, logged as <name>_<curve>.png
    figure_file: str
    summary: Callable[[Mapping[str, Any]], str]  # the line printed at the end
    reads_features: bool = False  # the fit needs the features stage's tables (TrainingData.features)


def shared_params(name: str, hyper: Hyperparameters, params: Params, dataset: Mapping[str, Any]) -> dict[str, Any]:
    """What every model logs under the same names: family, objective, the Hyperparameters, data source
    and split strategy (parameter_count follows the fit)."""
    return {**tracking.identity_params(*family_objective(name), dataset, params.split.strategy), **dataclasses.asdict(hyper)}


@contextmanager
def training_run(name: str, params: Params, dataset: Mapping[str, Any], ratings: pd.DataFrame, hyper: Hyperparameters) -> Iterator[str]:
    """The MLflow run of model `name`, `<family>-<objective>@<source>`, holding the train split as its
    training input and the shared params with the sizes of the training data; yields the run id."""
    family, objective = family_objective(name)
    run_name = tracking.run_name(family, objective, dataset["source"])
    with tracking.start_run(run_name, params.mlflow.experiment, family, dataset, objective, model=name) as run_id:
        tracking.log_split("train", ratings, dataset, params.split.strategy)
        tracking.log_params(
            {
                **shared_params(name, hyper, params, dataset),
                "n_users": ratings[USER].nunique(),
                "n_movies": ratings[MOVIE].nunique(),
                "n_train_ratings": len(ratings),
            }
        )
        yield run_id


def train(spec: TrainingSpec, params: Params, layout: Layout) -> dict[str, Any]:
    """Fit, log and save the model of `spec` in `layout`; returns the training result (what
    metrics/train_<name>.json and records/train_<name>.json hold together)."""
    tracking.check_reachable()  # an unreachable tracking server fails here, before any training
    data, meta = read_training_data(layout)
    if spec.reads_features:
        data = dataclasses.replace(data, features=load_features(layout.features))
    ratings = data.ratings
    with training_run(spec.name, params, meta, ratings, spec.hyperparameters(params)) as run_id:
        tracking.log_params(spec.logged_params(params))
        started = time.perf_counter()
        model = spec.fit(data, params, layout)
        seconds = time.perf_counter() - started
        tracking.log_params({"parameter_count": model.parameter_count})
        curves = spec.curves(model)
        tracking.log_curves(dict(curves.logged), curves.steps)
        metrics: dict[str, Any] = {
            **spec.train_metrics(model, data),
            "seconds": round(seconds, 3),
            "parameter_count": model.parameter_count,
            "mlflow_run_id": run_id,
            **dataset_identity(meta, layout.raw_meta),
        }
        tracking.log_metrics(tracking.train_metrics(metrics, skip=("parameter_count",)))
        tracking.log_figure(spec.figure(curves), spec.figure_file)
        metrics["model_uri"] = tracking.log_model(model, spec.name, params.serve)
        save_trained(model, metrics, curves.table, spec.name, layout)
    print(spec.summary(metrics))
    return metrics


def curve_figure(table: pd.DataFrame, column: str, title: str, ylabel: str = "cost") -> Any:
    """A matplotlib Figure (Agg, no pyplot state) of one curve per iteration."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(table["iteration"], table[column], label=f"training {ylabel}")
    axes.set(xlabel="iteration", ylabel=ylabel, title=title)
    axes.legend(loc="upper right")
    return figure
