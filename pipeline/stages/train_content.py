"""Stage `train_content`: train split + data/features/ -> models/content/, {metrics,records}/train_content.json,
plots/content_loss.csv, and an MLflow run `content-rating@<source>` (params, per-epoch
curve_train_loss/curve_val_loss, learning-curve PNG, model summary, pyfunc model).

With `content.distribute: multi_worker` the same command runs on every worker of the TF_CONFIG
cluster: worker 0 (the chief) does all of the above, the others train in step and write nothing.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import pandas as pd

from pipeline import tracking
from pipeline.config import Params
from pipeline.features import load_features
from pipeline.models.base import TrainingData
from pipeline.models.content import ContentModel
from pipeline.models.distributed import MULTI_WORKER, WorkerTask, worker_task
from pipeline.paths import Layout
from pipeline.stages.inputs import dataset_identity, read_training_data, save_trained
from pipeline.stages.training import NO_PENALTY, Hyperparameters, training_run

NAME = "content"
CURVES = {"loss": "train_loss", "val_loss": "val_loss"}  # Keras' name -> the logged curve's (curve_<name>)

Flush = Callable[[dict[str, list[float]], list[int]], None]


class CurveLogger(keras.callbacks.Callback):
    """Collects loss/val_loss per epoch (as train_loss/val_loss) and hands them to `flush` every
    `every` epochs and at the end."""

    def __init__(self, flush: Flush, every: int = 10) -> None:
        super().__init__()
        self.flush, self.every = flush, every
        self.pending: dict[str, list[float]] = {name: [] for name in CURVES.values()}
        self.steps: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        for key, name in CURVES.items():
            if logs and key in logs:
                self.pending[name].append(float(logs[key]))
        self.steps.append(epoch + 1)
        if len(self.steps) >= self.every:
            self._flush()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._flush()

    def _flush(self) -> None:
        if self.steps:
            self.flush({key: values for key, values in self.pending.items() if values}, self.steps)
        self.pending = {name: [] for name in CURVES.values()}
        self.steps = []


class EpochLine(keras.callbacks.Callback):
    """One printed line per epoch, for workers that run without a terminal (multi_worker)."""

    def __init__(self, task: WorkerTask) -> None:
        super().__init__()
        self.task = task

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        values = ", ".join(f"{key} {float(value):.4f}" for key, value in (logs or {}).items() if key in CURVES)
        print(f"content: worker {self.task.index} of {len(self.task.workers)}: epoch {epoch + 1}: {values}", flush=True)


def loss_table(history: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """epoch (1-based), loss, val_loss (empty when there was no validation set)."""
    loss = list(history.get("loss", []))
    val = list(history.get("val_loss", [])) or [float("nan")] * len(loss)
    return pd.DataFrame({"epoch": range(1, len(loss) + 1), "loss": loss, "val_loss": val})


def train_metrics(model: ContentModel, seconds: float, run_id: str, dataset: Mapping[str, Any]) -> dict[str, Any]:
    """loss/val_loss of the epoch whose weights were kept (the best one under early stopping), sizes, run id, data."""
    best = model.best_epoch if model.best_epoch is not None else len(model.history["loss"]) - 1
    val = model.history.get("val_loss")
    return {
        "loss": model.history["loss"][best],
        "val_loss": val[best] if val else None,
        "best_epoch": best + 1,
        "epochs_run": len(model.history["loss"]),
        "seconds": round(seconds, 3),
        **model.parameter_counts(),
        "parameter_count": model.parameter_count,
        "mlflow_run_id": run_id,
        **dataset_identity(dataset),
    }


def hyperparameters(params: Params) -> Hyperparameters:
    cfg = params.content  # early stopping, but no weight penalty
    return Hyperparameters(cfg.embedding_dim, cfg.learning_rate, cfg.epochs, NO_PENALTY, cfg.seed)


def learning_curve(table: pd.DataFrame) -> Any:
    """A matplotlib Figure (Agg, no pyplot state) of loss and val_loss per epoch."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(table["epoch"], table["loss"], marker="o", label="loss (train)")
    if table["val_loss"].notna().any():
        axes.plot(table["epoch"], table["val_loss"], marker="o", label="val_loss")
    axes.set(xlabel="epoch", ylabel="MSE on ratings scaled to [-1, 1]", title="content model learning curve")
    axes.legend()
    return figure


def summary_text(model: ContentModel) -> str:
    lines: list[str] = []
    network = model.network
    network.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), expand_nested=True)
    counts = model.parameter_counts()
    lines.append(", ".join(f"{key}: {value}" for key, value in counts.items()))
    return "\n".join(lines) + "\n"


def run(params: Params, layout: Layout) -> None:
    # TF_CONFIG is read here only; the model and the strategy are handed the parsed task
    task = worker_task(os.environ.get("TF_CONFIG")) if params.content.distribute == MULTI_WORKER else None
    if task is not None and not task.is_chief:
        run_worker(params, task, layout)
        return
    extra: list[keras.callbacks.Callback] = [] if task is None else [EpochLine(task)]
    tracking.check_reachable()  # an unreachable tracking server fails here, before any training
    data, meta = read_training_data_and_features(layout)
    train = data.ratings
    with training_run(NAME, params, meta, train, hyperparameters(params)) as run_id:
        tracking.log_params({"content": params.content.model_dump(), "features": params.features.model_dump()})
        curves = CurveLogger(lambda values, steps: tracking.log_curves(values, steps, run_id=run_id))
        started = time.perf_counter()
        verbose = 1 if sys.stdout.isatty() else 0
        model = ContentModel.fit(data, params.content, task=task, callbacks=[curves, *extra], verbose=verbose)
        metrics = train_metrics(model, time.perf_counter() - started, run_id, meta)
        tracking.log_params({"parameter_count": metrics["parameter_count"]})
        table = loss_table(model.history)
        tracking.log_metrics(tracking.train_metrics(metrics, skip=("parameter_count",)))
        tracking.log_figure(learning_curve(table), "content_loss.png")
        tracking.log_text(summary_text(model), "model_summary.txt")
        metrics["model_uri"] = tracking.log_model(model, NAME, params.serve)
        save_trained(model, metrics, table, NAME, layout)
    print(
        f"content: {metrics['epochs_run']} epochs in {metrics['seconds']:.1f} s, kept epoch {metrics['best_epoch']} "
        f"(loss {metrics['loss']:.4f}, val_loss {_fmt(metrics['val_loss'])}); "
        f"towers: user {metrics['user_tower_params']}, movie {metrics['movie_tower_params']} parameters"
    )


def run_worker(params: Params, task: WorkerTask, layout: Layout) -> None:
    """A non-chief worker: trains its part of every batch in step with the others, writes nothing."""
    data, _ = read_training_data_and_features(layout)
    model = ContentModel.fit(data, params.content, task=task, callbacks=[EpochLine(task)])
    with tempfile.TemporaryDirectory() as scratch:
        model.save(scratch)  # the usual Keras multi-worker pattern: every worker saves, only the chief's copy is kept
    print(f"content: worker {task.index} of {len(task.workers)} done; worker 0 ({task.workers[0]}) writes the model")


def read_training_data_and_features(layout: Layout) -> tuple[TrainingData, dict[str, Any]]:
    data, meta = read_training_data(layout)
    return dataclasses.replace(data, features=load_features(layout.features)), meta


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
