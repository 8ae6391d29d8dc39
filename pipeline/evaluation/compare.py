"""`recsys compare`: recent MLflow runs side by side, one table per data source and split, best first.

`summarize_runs` is pure (an `mlflow.search_runs` frame in, one `Group` per data source and split
out); `render` lays the groups out in at most WIDTH columns and `as_json` writes them for scripts;
`compare_runs` fetches the runs through pipeline.tracking (imported lazily: MLflow takes seconds to
import). Only the params whose logged values differ between a group's runs are shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.choices import SOURCES, SPLIT_STRATEGIES
from pipeline.errors import ConfigError
from pipeline.evaluation.metric_table import METRICS as METRIC_TABLE

METRIC_PREFIX = "metrics.test_"
# display column -> logged metric (the evaluate stage logs test_<name>); runs may differ in k
METRICS = {metric.header("k"): metric.name for metric in METRIC_TABLE}
LOWER_IS_BETTER = {metric.header("k") for metric in METRIC_TABLE if metric.lower_is_better}
IDENTITY = ["run", "run_id", "family", "objective", "dataset", "started"]
# the params every model logs under the same names (pipeline/stages/training.py), shown first when they differ
SHARED_PARAMS = ("latent_size", "learning_rate", "epochs", "regularization", "seed", "parameter_count")
# params that are the group (data_source, split_strategy) or in the run's name; `loader` (the class) and
# `name` of the logged pyfunc's model_config, which MLflow logs as params
NOT_COMPARED = {"family", "objective", "data_source", "split_strategy", "loader", "name"}
UNKNOWN = "-"
WIDTH = 120  # longest printed line
CELL = 40  # longest printed cell: longer values end in "~"


@dataclass(frozen=True)
class Group:
    """The runs of one data source and split strategy, best first: IDENTITY, metric and param columns."""

    data_source: str
    split: str
    table: pd.DataFrame
    params: list[str]  # the param columns of `table`: those whose values differ between its runs


def metric_label(by: str) -> str:
    """The column label of `by`, a label (nDCG@k) or a metric key (ndcg_at_k)."""
    label = next((label for label, key in METRICS.items() if by in (label, key)), by)
    if label not in METRICS:
        raise ConfigError(f"--by: unknown metric {by!r}; choose one of {', '.join(METRICS)}")
    return label


def column(runs: pd.DataFrame, name: str, fallback: str | None = None) -> pd.Series:
    """runs[name] (its gaps filled from runs[fallback]), NaN where neither was logged."""
    values = runs[name] if name in runs.columns else pd.Series(np.nan, index=runs.index, dtype=object)
    return values.fillna(column(runs, fallback)) if fallback else values


def differing(params: pd.DataFrame) -> list[str]:
    """The columns of `params` with at least two different logged values (a run without the param is
    not a difference: each family's own section would otherwise always differ), shared ones first."""
    names = [name for name in params.columns if name not in NOT_COMPARED and params[name].dropna().nunique() > 1]
    return sorted(names, key=lambda name: (SHARED_PARAMS.index(name) if name in SHARED_PARAMS else len(SHARED_PARAMS), name))


def summarize_runs(runs: pd.DataFrame, by: str = "rmse") -> list[Group]:
    """One Group per (data source, split strategy), in the order of their newest run; in each, one row
    per run sorted best first on `by` (runs without it, e.g. not evaluated yet, last)."""
    label = metric_label(by)
    if runs.empty:
        return []
    params = runs[[c for c in runs.columns if c.startswith("params.")]].rename(columns=lambda c: c.removeprefix("params."))
    table = pd.DataFrame(
        {
            "run": column(runs, "tags.mlflow.runName"),
            "run_id": column(runs, "run_id"),
            "family": column(runs, "params.family", "tags.model_family"),
            "objective": column(runs, "params.objective", "tags.objective"),
            "dataset": column(runs, "tags.dataset_fingerprint"),
            "started": pd.to_datetime(column(runs, "start_time")).dt.strftime("%Y-%m-%d %H:%M"),
            **{name: pd.to_numeric(column(runs, f"{METRIC_PREFIX}{key}"), errors="coerce") for name, key in METRICS.items()},
        }
    )
    sources = column(runs, "params.data_source", "tags.data_source").fillna(UNKNOWN)
    splits = column(runs, "params.split_strategy").fillna(UNKNOWN)
    groups = []
    for source, split in dict.fromkeys(zip(sources, splits, strict=True)):
        rows = (sources == source) & (splits == split)
        shown = differing(params[rows])
        ordered = pd.concat([table[rows], params.loc[rows, shown]], axis=1)
        ordered = ordered.sort_values(label, ascending=label in LOWER_IS_BETTER, na_position="last", kind="stable")
        groups.append(Group(str(source), str(split), ordered.reset_index(drop=True), shown))
    return groups


def run_filter(source: str | None = None, split: str | None = None) -> str:
    """MLflow's search filter for runs of data source `source` and split strategy `split` (each optional)."""
    clauses = []
    if source is not None:
        if source not in SOURCES:
            raise ConfigError(f"--source: unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
        clauses.append(f"tags.data_source = '{source}'")
    if split is not None:
        if split not in SPLIT_STRATEGIES:
            raise ConfigError(f"--split: unknown split strategy {split!r}; choose one of {', '.join(SPLIT_STRATEGIES)}")
        clauses.append(f"params.split_strategy = '{split}'")
    return " and ".join(clauses)


def compare_runs(experiment: str, last: int = 20, by: str = "rmse", source: str | None = None, split: str | None = None) -> list[Group]:
    """The `last` most recent runs of `experiment` (of data source `source`, split `split`), grouped, best first on `by`."""
    from pipeline import tracking

    if last < 1:
        raise ConfigError(f"--last: must be at least 1 (got {last})")
    metric_label(by)
    return summarize_runs(tracking.search_runs(experiment, max_results=last, filter_string=run_filter(source, split)), by)


# ---- output -------------------------------------------------------------------------------------
def cut(text: str, width: int = CELL) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def cells(group: Group) -> dict[str, list[str]]:
    """Printed column -> header and cells: run (without the "@<source>" the heading names), dataset
    (fingerprint), started, the metrics any run has, the differing params, run id (the first 8
    characters of each id)."""
    table = group.table.assign(run=group.table["run"].str.removesuffix(f"@{group.data_source}"))
    metrics = [name for name in METRICS if table[name].notna().any()]
    shown: dict[str, list[str]] = {}
    for name in ["run", "dataset", "started", *metrics, *group.params, "run_id"]:
        values = table[name]
        if name in METRICS:
            text = [UNKNOWN if pd.isna(v) else f"{v:.4f}" for v in values]
        else:
            text = [UNKNOWN if pd.isna(v) else str(v) for v in values]
            text = [v[:8] for v in text] if name in ("dataset", "run_id") else text
        shown[name] = [cut(name), *(cut(v) for v in text)]
    return shown


def blocks(columns: dict[str, list[str]], width: int = WIDTH) -> list[list[str]]:
    """The columns after the first, in blocks that fit `width` beside the first (repeated in each)."""
    widths = {name: max(map(len, values)) for name, values in columns.items()}
    key, *rest = columns
    found: list[list[str]] = [[]]
    used = widths[key]
    for name in rest:
        if found[-1] and used + 2 + widths[name] > width:
            found.append([])
            used = widths[key]
        found[-1].append(name)
        used += 2 + widths[name]
    return found


def render_group(group: Group, by: str, width: int = WIDTH) -> list[str]:
    columns = cells(group)
    widths = {name: max(map(len, values)) for name, values in columns.items()}
    key = next(iter(columns))
    n = len(group.table)
    plural = "s" if n != 1 else ""
    lines = [f"{group.data_source}, {group.split} split: {n} run{plural}, best first on {metric_label(by)}"]
    for number, block in enumerate(blocks(columns, width)):
        lines += [""] if number else []
        for row in range(n + 1):
            parts = [columns[key][row].ljust(widths[key])]
            parts += [columns[c][row].rjust(widths[c]) if c in METRICS else columns[c][row].ljust(widths[c]) for c in block]
            lines.append("  ".join(parts).rstrip())
    return lines


def render(groups: Sequence[Group], by: str = "rmse", width: int = WIDTH) -> str:
    """The groups as text tables, every line at most `width` characters."""
    lines: list[str] = []
    for group in groups:
        lines += ([""] if lines else []) + render_group(group, by, width)
    return "\n".join(lines)


def as_json(groups: Sequence[Group], experiment: str, by: str = "rmse") -> str:
    """{"experiment", "by", "groups": [{"data_source", "split", "runs": [{run, run_id, family, objective,
    dataset_fingerprint, started, "metrics": {name: value or null}, "params": {the differing params}}]}]}."""

    def value(v: Any) -> Any:
        return None if pd.isna(v) else v

    def run(row: pd.Series, params: list[str]) -> dict[str, Any]:
        identity = {("dataset_fingerprint" if name == "dataset" else name): value(row[name]) for name in IDENTITY}
        metrics = {key: value(float(row[name])) for name, key in METRICS.items()}
        return {**identity, "metrics": metrics, "params": {name: value(row[name]) for name in params}}

    document = {
        "experiment": experiment,
        "by": METRICS[metric_label(by)],
        "groups": [
            {"data_source": g.data_source, "split": g.split, "runs": [run(row, g.params) for _, row in g.table.iterrows()]} for g in groups
        ],
    }
    return json.dumps(document, indent=2)
