"""Stage `train_cofi_ranking`: train split -> models/cofi_ranking/, {metrics,records}/train_cofi_ranking.json,
plots/cofi_ranking_cost.csv, and an MLflow run `cofi-ranking@<source>` (params, `curve_train_cost` per
ALS iteration, cost-curve PNG, pyfunc model whose predict() returns ranking scores, not stars).

Nothing is written when training fails: the outputs appear all together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.config import Params
from pipeline.models.base import TrainingData
from pipeline.models.cofi_ranking import CofiRankingModel
from pipeline.paths import Layout
from pipeline.stages.training import ALS, Curves, Hyperparameters, TrainingSpec, curve_figure, train

NAME = "cofi_ranking"


def curves(model: CofiRankingModel) -> Curves:
    """The weighted cost J after each ALS iteration (0-based)."""
    steps = list(range(model.history.iterations_run))
    table = pd.DataFrame({"iteration": steps, "cost": model.history.cost})
    return Curves(table, {"train_cost": list(model.history.cost)}, steps)


def train_metrics(model: CofiRankingModel, data: TrainingData) -> dict[str, Any]:
    return {"final_cost": model.history.cost[-1], "iterations_run": model.history.iterations_run}


def summary(metrics: Mapping[str, Any]) -> str:
    return (
        f"{NAME}: {metrics['iterations_run']} ALS iterations in {metrics['seconds']:.1f} s, final cost "
        f"{metrics['final_cost']:.6g}, {metrics['parameter_count']} parameters"
    )


def hyperparameters(params: Params) -> Hyperparameters:
    cfg = params.cofi_ranking
    return Hyperparameters(cfg.num_features, ALS, cfg.iterations, cfg.lambda_, cfg.seed)


SPEC = TrainingSpec(
    name=NAME,
    logged_params=lambda params: {NAME: params.cofi_ranking.model_dump()},
    hyperparameters=hyperparameters,
    fit=lambda data, params, layout: CofiRankingModel.fit(data, params.cofi_ranking),
    curves=curves,
    train_metrics=train_metrics,
    figure=lambda c: curve_figure(c.table, "cost", "collaborative filtering for top-N lists: weighted cost per iteration"),
    figure_file=f"{NAME}_cost.png",
    summary=summary,
)


def run(params: Params, layout: Layout) -> None:
    train(SPEC, params, layout)
