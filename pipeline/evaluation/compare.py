"""`recsys compare`: recent MLflow runs side by side, best first.

`summarize_runs` is pure (an `mlflow.search_runs` frame in, a display table out); `compare_runs`
fetches the runs through pipeline.tracking (imported lazily: MLflow takes seconds to import).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError
from pipeline.evaluation.metric_table import METRICS as METRIC_TABLE

METRIC_PREFIX = "metrics.test_"
# display column -> logged metric (the evaluate stage logs test_<name>); runs may differ in k
METRICS = {metric.header("k"): metric.name for metric in METRIC_TABLE}
LOWER_IS_BETTER = {metric.header("k") for metric in METRIC_TABLE if metric.lower_is_better}
COLUMNS = ["run", "family", "started", "params", *METRICS, "run_id"]


def key_params(runs: pd.DataFrame, families: pd.Series) -> pd.Series:
    """'k=v, k=v' of each run's own params: those under its family's section (`cofi.k` for family
    cofi), or when it has none there every param but the evaluate.* settings. One row per run: a handful of runs, no data.
    """
    param_columns = [c for c in runs.columns if c.startswith("params.")]

    def describe(row: pd.Series) -> str:
        values = row[param_columns].dropna()
        own_prefix = f"params.{families[row.name]}."
        own = {k.removeprefix(own_prefix): v for k, v in values.items() if k.startswith(own_prefix)}
        chosen = own or {k.removeprefix("params."): v for k, v in values.items() if not k.startswith("params.evaluate.")}
        return ", ".join(f"{k}={v}" for k, v in chosen.items())

    if not param_columns:
        return pd.Series("", index=runs.index)
    return runs.apply(describe, axis=1)


def summarize_runs(runs: pd.DataFrame, by: str = "rmse") -> pd.DataFrame:
    """One row per run: name, family, start time, key params, test metrics; sorted best first on `by`.

    `by` is a column label (nDCG@k) or the metric's key (ndcg_at_k). Runs without the `by` metric
    (e.g. not evaluated yet, or popularity for rmse) come last.
    """
    by = next((label for label, key in METRICS.items() if by in (label, key)), by)
    if by not in METRICS:
        raise ConfigError(f"--by: unknown metric {by!r}; choose one of {', '.join(METRICS)}")
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    column = lambda name: runs[name] if name in runs.columns else pd.Series(np.nan, index=runs.index)  # noqa: E731
    families = column("tags.model_family")
    table = pd.DataFrame(
        {
            "run": column("tags.mlflow.runName"),
            "family": families,
            "started": pd.to_datetime(column("start_time")).dt.strftime("%Y-%m-%d %H:%M"),
            "params": key_params(runs, families),
            **{label: pd.to_numeric(column(f"{METRIC_PREFIX}{key}"), errors="coerce") for label, key in METRICS.items()},
            "run_id": column("run_id"),
        }
    )
    ordered = table.sort_values(by, ascending=by in LOWER_IS_BETTER, na_position="last", kind="stable")
    return ordered.reset_index(drop=True)


def compare_runs(experiment: str, last: int = 20, by: str = "rmse") -> pd.DataFrame:
    """The `last` most recent runs of `experiment`, best first on `by`."""
    from pipeline import tracking

    if last < 1:
        raise ConfigError(f"--last: must be at least 1 (got {last})")
    return summarize_runs(tracking.search_runs(experiment, max_results=last), by)
