"""Stage `train_cofi`: train split -> models/cofi/, metrics/train_cofi.json, plots/cofi_cost.csv, and an
MLflow run named `cofi` (params, `train_cost` per iteration, cost-curve PNG, pyfunc model).

Nothing is written when training fails (a NaN cost, bad input): the outputs appear all together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.config import Params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.models.base import TrainingData
from pipeline.models.cofi import CofiModel
from pipeline.stages.inputs import dataset_identity, read_training_data, save_trained

NAME = "cofi"
MODEL_DIR = paths.MODELS / NAME
METRICS_FILE = paths.METRICS / "train_cofi.json"
COST_CSV = paths.PLOTS / "cofi_cost.csv"


def cost_table(model: CofiModel) -> pd.DataFrame:
    """iteration (0-based, as the course prints it), cost."""
    return pd.DataFrame({"iteration": model.history.cost_steps(), "cost": model.history.cost})


def fit(data: TrainingData, params: Params) -> CofiModel:
    """The model of `cofi.engine`: Adam in TensorFlow, or ALS on Spark reading the train split."""
    if params.cofi.engine == "spark":
        from pipeline.models.cofi_spark import fit_spark

        return fit_spark(data, params.cofi, params.spark, paths.TRAIN)
    return CofiModel.fit(data, params.cofi)


def train_metrics(
    model: CofiModel, train: pd.DataFrame, seconds: float, run_id: str, dataset: Mapping[str, Any]
) -> dict[str, Any]:
    """metrics/train_cofi.json: the last cost, train RMSE (clipped stars), fit wall seconds, sizes, run id, data."""
    history = model.history
    predicted = model.predict(train[[USER, MOVIE]])
    metrics: dict[str, Any] = {
        "final_cost": history.cost[-1],
        "train_rmse": float(np.sqrt(np.mean((predicted - train[RATING].to_numpy()) ** 2))),
        "iterations_run": history.iterations_run,
        "seconds": round(seconds, 3),
        "parameter_count": model.parameter_count,
    }
    if history.validation_rmse:
        metrics["best_iteration"] = history.best_iteration
        metrics["validation_rmse"] = history.validation_rmse[history.best_iteration]
    metrics["mlflow_run_id"] = run_id
    return {**metrics, **dataset_identity(dataset)}


def cost_figure(table: pd.DataFrame, validation_rmse: list[float]) -> Any:
    """A matplotlib Figure (Agg, no pyplot state) of the cost per iteration (and validation RMSE)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(table["iteration"], table["cost"], label="training cost J")
    axes.set(xlabel="iteration", ylabel="cost", title="collaborative filtering: cost per iteration")
    if validation_rmse:
        twin = axes.twinx()
        twin.plot(table["iteration"], validation_rmse, color="tab:orange", label="validation RMSE")
        twin.set_ylabel("validation RMSE (stars)")
        twin.legend(loc="upper center")
    axes.legend(loc="upper right")
    return figure


def run(params: Params) -> None:
    tracking.check_reachable()  # an unreachable tracking server fails here, before any training
    data, meta = read_training_data()
    train = data.ratings
    with tracking.start_run(NAME, params.mlflow.experiment, NAME, meta) as run_id:
        tracking.log_params(
            {
                "cofi": params.cofi.model_dump(),
                **({"spark": params.spark.model_dump()} if params.cofi.engine == "spark" else {}),
                "n_users": train[USER].nunique(),
                "n_movies": train[MOVIE].nunique(),
                "n_train_ratings": len(train),
            }
        )
        started = time.perf_counter()
        model = fit(data, params)
        seconds = time.perf_counter() - started
        history = model.history
        tracking.log_params({"parameter_count": model.parameter_count})
        curves = {"train_cost": history.cost}
        if history.validation_rmse:
            curves["validation_rmse"] = history.validation_rmse
        tracking.log_metric_history(curves, history.cost_steps())
        metrics = train_metrics(model, train, seconds, run_id, meta)
        tracking.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and k != "parameter_count"})
        table = cost_table(model)
        tracking.log_figure(cost_figure(table, history.validation_rmse), "cofi_cost.png")
        metrics["model_uri"] = tracking.log_model(model, NAME, example=train[[USER, MOVIE]].head(5).reset_index(drop=True))
        save_trained(model, metrics, table, NAME, COST_CSV)
    print(
        f"cofi: {metrics['iterations_run']} iterations in {metrics['seconds']:.1f} s, final cost "
        f"{metrics['final_cost']:.4g}, train RMSE {metrics['train_rmse']:.4f}, {metrics['parameter_count']} parameters"
    )
