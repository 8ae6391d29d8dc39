"""What every training stage does around its model: one MLflow run (params, a curve per iteration,
its figure, the pyfunc model), then models/<name>/, metrics/train_<name>.json and the curve CSV
written together (nothing when training fails).

A stage describes its model with a `TrainingSpec` and calls `train(spec, params, layout)`; adding a
model to the pipeline is one spec, one stage module and one dvc.yaml stage.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import tracking
from pipeline.config import Params
from pipeline.data.schema import MOVIE, USER
from pipeline.features import load_features
from pipeline.models.base import TrainingData
from pipeline.paths import Layout
from pipeline.stages.inputs import dataset_identity, read_training_data, save_trained


@dataclass(frozen=True)
class Curves:
    """The per-iteration values a fit recorded: `table` is the CSV (an `iteration` column first),
    `logged` the MLflow metric histories at `steps`."""

    table: pd.DataFrame
    logged: Mapping[str, list[float]]
    steps: list[int]


@dataclass(frozen=True)
class TrainingSpec:
    name: str  # models/<name>/, metrics/train_<name>.json, plots/<name>_<curve>.csv, the MLflow run and model family
    logged_params: Callable[[Params], dict[str, Any]]  # the params.yaml sections the fit reads
    fit: Callable[[TrainingData, Params, Layout], Any]
    curves: Callable[[Any], Curves]
    train_metrics: Callable[[Any, TrainingData], dict[str, Any]]  # besides seconds, sizes, run id, data
    figure: Callable[[Curves], Any]  # a matplotlib Figure, logged as <name>_<curve>.png
    figure_file: str
    summary: Callable[[Mapping[str, Any]], str]  # the line printed at the end
    reads_features: bool = False  # the fit needs the features stage's tables (TrainingData.features)


def train(spec: TrainingSpec, params: Params, layout: Layout) -> dict[str, Any]:
    """Fit, log and save the model of `spec` in `layout`; returns metrics/train_<name>.json's content."""
    tracking.check_reachable()  # an unreachable tracking server fails here, before any training
    data, meta = read_training_data(layout)
    if spec.reads_features:
        data = dataclasses.replace(data, features=load_features(layout.features))
    ratings = data.ratings
    with tracking.start_run(spec.name, params.mlflow.experiment, spec.name, meta) as run_id:
        tracking.log_params(
            {
                **spec.logged_params(params),
                "n_users": ratings[USER].nunique(),
                "n_movies": ratings[MOVIE].nunique(),
                "n_train_ratings": len(ratings),
            }
        )
        started = time.perf_counter()
        model = spec.fit(data, params, layout)
        seconds = time.perf_counter() - started
        tracking.log_params({"parameter_count": model.parameter_count})
        curves = spec.curves(model)
        tracking.log_metric_history(dict(curves.logged), curves.steps)
        metrics: dict[str, Any] = {
            **spec.train_metrics(model, data),
            "seconds": round(seconds, 3),
            "parameter_count": model.parameter_count,
            "mlflow_run_id": run_id,
            **dataset_identity(meta, layout.raw_meta),
        }
        tracking.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and k != "parameter_count"})
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
