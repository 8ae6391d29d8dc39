"""Batch recommendations: every training user's top-k list from one ranking model, in bounded memory.

`best_ranking_model` picks, among the ranking models, the one with the best `promote.ranking_metric`
in metrics/evaluation.json. `write_top_k` scores the users `batch_size` at a time with the model's
`score_block` (batch_size x catalogue scores, never users x catalogue), excludes each user's training
movies, keeps the k best of each row (`base.top_n`: np.argpartition, ties in catalogue order) and
appends each block to one parquet file as it goes, so memory is one block's scores plus the rows
written, whatever the number of users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.schema import MOVIE, USER
from pipeline.errors import ModelError
from pipeline.evaluation.metric_table import metric as metric_entry
from pipeline.models.base import Recommender, top_n

RANK, SCORE = "rank", "score"
TOP_K_COLUMNS = (USER, RANK, MOVIE, SCORE)
TOP_K_SCHEMA = pa.schema([(USER, pa.int64()), (RANK, pa.int64()), (MOVIE, pa.int64()), (SCORE, pa.float64())])


@dataclass(frozen=True)
class Choice:
    """The ranking model chosen by `metric`: every candidate's value, and why any other was left out."""

    model: str
    metric: str
    scores: Mapping[str, float]
    left_out: Mapping[str, str]
    file: str

    @property
    def lower_is_better(self) -> bool:
        return metric_entry(self.metric).lower_is_better

    def reason(self) -> str:
        """One sentence saying why `model` was chosen."""
        best = "lowest" if self.lower_is_better else "highest"
        values = ", ".join(f"{name} {value:.4f}" for name, value in self.scores.items())
        text = f"{self.model} has the {best} {self.metric} (promote.ranking_metric) in {self.file} among the ranking models: {values}"
        if sum(value == self.scores[self.model] for value in self.scores.values()) > 1:
            text += "; a tie goes to the first listed"
        for name, why in self.left_out.items():
            text += f"; {name} left out: {why}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric,
            "value": self.scores[self.model],
            "lower_is_better": self.lower_is_better,
            "candidates": dict(self.scores),
            "left_out": dict(self.left_out),
            "reason": self.reason(),
        }


def _value(evaluation: Mapping[str, Any], name: str, metric: str) -> float | str:
    """The candidate's metric, or the reason it has none."""
    result = evaluation.get(name)
    if not isinstance(result, Mapping):
        return "no entry (its evaluation did not run)"
    if "skipped" in result:
        return f"skipped by evaluate ({result['skipped']})"
    value = result.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{metric} is {value!r}, not a finite number"
    return float(value)


def best_ranking_model(evaluation: Mapping[str, Any], metric: str, candidates: Sequence[str], file: str) -> Choice:
    """The candidate with the best `metric` (a tie: the first in `candidates`), or a ModelError when none has one."""
    found = {name: _value(evaluation, name, metric) for name in candidates}
    scores = {name: value for name, value in found.items() if isinstance(value, float)}
    left_out = {name: value for name, value in found.items() if isinstance(value, str)}
    if not scores:
        reasons = "; ".join(f"{name}: {why}" for name, why in left_out.items())
        raise ModelError(f"{file}: no ranking model has a usable {metric} ({reasons}); run the evaluate stage (dvc repro evaluate)")
    sign = -1.0 if metric_entry(metric).lower_is_better else 1.0
    model = max(scores, key=lambda name: sign * scores[name])  # max keeps the first of equal keys
    return Choice(model, metric, scores, left_out, file)


def top_k_block(model: Recommender, user_ids: np.ndarray, k: int) -> pa.Table:
    """The k best unseen catalogue movies of each user, best first: user_id, rank (1..k), movie_id, score.

    A user with fewer than k unseen movies gets them all."""
    user_ids = np.asarray(user_ids, np.int64)
    scores = model.score_block(user_ids)
    picks = top_n(scores, k, model.seen.mask(user_ids, len(model.catalogue)))  # -1 pads the end of short rows
    rows, places = np.nonzero(picks >= 0)
    columns = picks[rows, places]
    return pa.table(
        {
            USER: user_ids[rows],
            RANK: places.astype(np.int64) + 1,
            MOVIE: model.catalogue.movie_ids[columns],
            SCORE: np.asarray(scores[rows, columns], np.float64),
        },
        schema=TOP_K_SCHEMA,
    )


def write_top_k(model: Recommender, user_ids: np.ndarray, k: int, batch_size: int, path: Path) -> int:
    """Write `top_k_block` of every user to the parquet file `path`, one row group per block of
    `batch_size` users, in the order of `user_ids`; returns the number of rows written."""
    rows = 0
    with pq.ParquetWriter(path, TOP_K_SCHEMA) as writer:
        for start in range(0, len(user_ids), batch_size):
            block = top_k_block(model, user_ids[start : start + batch_size], k)
            writer.write_table(block)
            rows += block.num_rows
    return rows
