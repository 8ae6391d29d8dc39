"""Stage `train_content_ranking`: train split + features -> models/content_ranking/,
{metrics,records}/train_content_ranking.json, plots/content_ranking_loss.csv, and an MLflow run
`content-ranking@<source>` (params, `curve_train_loss` per epoch, loss-curve PNG, pyfunc model whose
predict() returns ranking scores, not stars).

Nothing is written when training fails: the outputs appear all together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.config import Params
from pipeline.models.base import TrainingData
from pipeline.models.content_retrieval import ContentRankingModel
from pipeline.paths import Layout
from pipeline.stages.training import NO_PENALTY, Curves, Hyperparameters, TrainingSpec, curve_figure, train

NAME = "content_ranking"


def curves(model: ContentRankingModel) -> Curves:
    """The mean in-batch softmax loss of each epoch (0-based)."""
    losses = list(model.history["loss"])
    steps = list(range(len(losses)))
    return Curves(pd.DataFrame({"iteration": steps, "loss": losses}), {"train_loss": losses}, steps)


def train_metrics(model: ContentRankingModel, data: TrainingData) -> dict[str, Any]:
    return {"final_loss": model.history["loss"][-1], "epochs_run": len(model.history["loss"])}


def summary(metrics: Mapping[str, Any]) -> str:
    return (
        f"{NAME}: {metrics['epochs_run']} epochs in {metrics['seconds']:.1f} s, final loss "
        f"{metrics['final_loss']:.4f}, {metrics['parameter_count']} parameters"
    )


def hyperparameters(params: Params) -> Hyperparameters:
    cfg = params.content_ranking  # id, history and blank-row dropout, but no weight penalty
    return Hyperparameters(cfg.embedding_dim, cfg.learning_rate, cfg.epochs, NO_PENALTY, cfg.seed)


SPEC = TrainingSpec(
    name=NAME,
    logged_params=lambda params: {NAME: params.content_ranking.model_dump()},
    hyperparameters=hyperparameters,
    fit=lambda data, params, layout: ContentRankingModel.fit(data, params.content_ranking),
    curves=curves,
    train_metrics=train_metrics,
    figure=lambda c: curve_figure(c.table, "loss", "content-based filtering for top-N lists: in-batch softmax loss per epoch", "loss"),
    figure_file=f"{NAME}_loss.png",
    summary=summary,
    reads_features=True,
)


def run(params: Params, layout: Layout) -> None:
    train(SPEC, params, layout)
