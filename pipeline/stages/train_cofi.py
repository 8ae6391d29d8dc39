"""Stage `train_cofi`: train split -> models/cofi/, {metrics,records}/train_cofi.json, plots/cofi_cost.csv,
and an MLflow run `cofi-rating@<source>` (params, `curve_train_cost` per iteration, cost-curve PNG, pyfunc model).

Nothing is written when training fails (a NaN cost, bad input): the outputs appear all together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.models.base import TrainingData
from pipeline.models.cofi import CofiModel
from pipeline.paths import Layout
from pipeline.stages.training import ALS, Curves, Hyperparameters, TrainingSpec, train

NAME = "cofi"


def cost_table(model: CofiModel) -> pd.DataFrame:
    """iteration (0-based, as the course prints it), cost."""
    return pd.DataFrame({"iteration": model.history.cost_steps(), "cost": model.history.cost})


def fit(data: TrainingData, params: Params, layout: Layout) -> CofiModel:
    """The model of `cofi.engine`: Adam (NumPy or TensorFlow), or ALS on Spark reading the train split."""
    if params.cofi.engine == "spark":
        from pipeline.models.cofi_spark import fit_spark

        return fit_spark(data, params.cofi, params.spark, layout.train)
    return CofiModel.fit(data, params.cofi)


def train_metrics(model: CofiModel, data: TrainingData) -> dict[str, Any]:
    """The last cost, train RMSE (clipped stars), iterations (and the best validation iteration)."""
    history, train = model.history, data.ratings
    predicted = model.predict(train[[USER, MOVIE]])
    metrics: dict[str, Any] = {
        "final_cost": history.cost[-1],
        "train_rmse": float(np.sqrt(np.mean((predicted - train[RATING].to_numpy()) ** 2))),
        "iterations_run": history.iterations_run,
    }
    if history.validation_rmse:
        assert history.best_iteration is not None, "a fit that records validation RMSEs also records its best iteration"
        metrics["best_iteration"] = history.best_iteration
        metrics["validation_rmse"] = history.validation_rmse[history.best_iteration]
    return metrics


def curves(model: CofiModel) -> Curves:
    history = model.history
    logged = {"train_cost": history.cost}
    if history.validation_rmse:
        logged["val_rmse"] = history.validation_rmse
    return Curves(cost_table(model), logged, history.cost_steps())


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


def logged_params(params: Params) -> dict[str, Any]:
    return {"cofi": params.cofi.model_dump(), **({"spark": params.spark.model_dump()} if params.cofi.engine == "spark" else {})}


def hyperparameters(params: Params) -> Hyperparameters:
    cofi = params.cofi
    learning_rate = ALS if cofi.engine == "spark" else cofi.learning_rate
    return Hyperparameters(cofi.num_features, learning_rate, cofi.iterations, cofi.lambda_, cofi.seed)


def summary(metrics: Mapping[str, Any]) -> str:
    return (
        f"cofi: {metrics['iterations_run']} iterations in {metrics['seconds']:.1f} s, final cost "
        f"{metrics['final_cost']:.4g}, train RMSE {metrics['train_rmse']:.4f}, {metrics['parameter_count']} parameters"
    )


SPEC = TrainingSpec(
    name=NAME,
    logged_params=logged_params,
    hyperparameters=hyperparameters,
    fit=fit,
    curves=curves,
    train_metrics=train_metrics,
    figure=lambda c: cost_figure(c.table, list(c.logged.get("val_rmse", []))),
    figure_file="cofi_cost.png",
    summary=summary,
)


def run(params: Params, layout: Layout) -> None:
    train(SPEC, params, layout)
