"""The evaluation report: reports/report.md (the metrics table) and reports/report.html (one offline file).

The HTML page holds the metrics table, the learning curves, bar charts of RMSE and nDCG@k, and
error by user activity for every rating model; figures are matplotlib PNGs embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.evaluation.metric_table import BY_NAME, METRICS

STEP_COLUMNS = ("step", "iteration", "epoch")
COUNTS = {"n_test_ratings": "test ratings", "cold_n_test_ratings": "cold test ratings", "n_ranked_users": "ranked users"}


def metric_labels(k: int) -> dict[str, str]:
    """evaluation.json key (cold ones flattened to cold_<key>) -> table header: the metrics, then the counts."""
    return {**{metric.name: metric.header(k) for metric in METRICS}, **COUNTS}


def evaluated(evaluation: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The models with metrics (a skipped one's row is {"skipped": reason})."""
    return {name: result for name, result in evaluation.items() if "skipped" not in result}


def skipped_text(evaluation: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence per skipped model, or ""."""
    return " ".join(f"{name} was skipped: {result['skipped']}." for name, result in evaluation.items() if "skipped" in result)


def metrics_table(evaluation: Mapping[str, Mapping[str, Any]], k: int) -> pd.DataFrame:
    """One row per evaluated model (in `evaluation` order), one column per metric; missing values are NaN."""
    rows = {}
    for name, result in evaluated(evaluation).items():
        cold = result.get("cold", {})
        flat = {key: value for key, value in result.items() if key != "cold"}
        flat.update({f"cold_{key}": value for key, value in cold.items()})
        rows[name] = flat
    labels = metric_labels(k)
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(labels))
    table = table.astype("float64").rename(columns=labels)
    table.index.name = "model"
    return table


def _cell(value: float | str, column: str) -> str:
    if isinstance(value, str):
        return value
    if pd.isna(value):
        return "-"
    if column in COUNTS.values():
        return f"{int(value):,}"
    return f"{value:.4f}"


def formatted_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, the model name first."""
    return [[str(name), *(_cell(row[c], c) for c in table.columns)] for name, row in table.iterrows()]


def markdown_table(table: pd.DataFrame) -> str:
    header = ["model", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in formatted_rows(table)]
    return "\n".join(lines) + "\n"


OBJECTIVE_COLUMNS = ("ndcg_at_k", "precision_at_k", "recall_at_k", "coverage", "rmse")
REFERENCES = {"ease": "baseline (item-item, ranking)", "popularity": "baseline (most rated)"}
WHY_RANKING = (
    "Why a model trained on RMSE ranks poorly: it fits the stars of the movies people chose to rate and never "
    "learns which movies a user would choose among all of them, so movies with a few high ratings score as well "
    "as the favourites and dominate the top of its list (the support shrinkage of params.ranking only damps "
    "this). A ranking objective compares each movie the user picked with all the movies the user did not pick, "
    "which is what a top-N list is judged on."
)


def objectives_table(evaluation: Mapping[str, Mapping[str, Any]], k: int, families: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Each family's rating and ranking model side by side on the list metrics (and RMSE), with the
    EASE and popularity rows for reference; only models present in `evaluation`."""
    table = metrics_table(evaluation, k)
    labels = metric_labels(k)
    rows = [(name, f"{family}: {objective} objective") for family, names in families.items() for objective, name in names.items()]
    rows += list(REFERENCES.items())
    present = [(name, what) for name, what in rows if name in table.index]
    out = table.loc[[name for name, _ in present], [labels[c] for c in OBJECTIVE_COLUMNS]]
    out.insert(0, "objective", [what for _, what in present])
    return out


def objectives_markdown(evaluation: Mapping[str, Mapping[str, Any]], k: int, families: Mapping[str, Mapping[str, str]]) -> str:
    """The two objectives section, or "" when no family has both models evaluated."""
    table = objectives_table(evaluation, k, families)
    if not any(all(name in table.index for name in names.values()) for names in families.values()):
        return ""
    return f"## Rating vs ranking objective\n\n{markdown_table(table)}\n{WHY_RANKING}\n"


def markdown_report(
    evaluation: Mapping[str, Mapping[str, Any]], k: int, protocol: str, families: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """reports/report.md: a title, the protocol in one paragraph, the metrics table, the skipped
    models, and the rating vs ranking objective per family."""
    skipped = skipped_text(evaluation)
    parts = [f"# Model evaluation\n\n{protocol}\n\n{markdown_table(metrics_table(evaluation, k))}"]
    if skipped:
        parts.append(f"\n{skipped}\n")
    objectives = objectives_markdown(evaluation, k, families or {})
    if objectives:
        parts.append(f"\n{objectives}")
    return "".join(parts)


# ---- figures --------------------------------------------------------------------------------
def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bar_chart(table: pd.DataFrame, column: str, lower_is_better: bool) -> Figure | None:
    """Models compared on one metric (models without a value are left out); None when none has one."""
    values = table[column].dropna()
    if values.empty:
        return None
    figure = Figure(figsize=(6, 3))
    axes = figure.subplots()
    axes.bar(values.index.astype(str), values.to_numpy(), color="#4c72b0")
    axes.set_ylabel(column)
    axes.set_title(f"{column} ({'lower' if lower_is_better else 'higher'} is better)")
    for x, value in enumerate(values.to_numpy()):
        axes.annotate(f"{value:.3f}", (x, value), ha="center", va="bottom", fontsize=8)
    return figure


def curve_figure(name: str, curve: pd.DataFrame) -> Figure | None:
    """Every numeric column of a learning-curve CSV against its step/iteration/epoch column (or row number)."""
    steps_column = next((c for c in curve.columns if str(c).lower() in STEP_COLUMNS), None)
    steps = curve[steps_column].to_numpy() if steps_column else np.arange(len(curve))
    series = [c for c in curve.select_dtypes("number").columns if c != steps_column]
    if not series or curve.empty:
        return None
    figure = Figure(figsize=(6, 3))
    axes = figure.subplots()
    for column in series:
        axes.plot(steps, curve[column].to_numpy(), label=str(column))
    axes.set_xlabel(steps_column or "step")
    axes.set_title(f"{name}: learning curve")
    axes.legend()
    return figure


def activity_figure(activity: pd.DataFrame) -> Figure | None:
    """RMSE by bin of the user's training ratings, one line per model."""
    if activity.empty:
        return None
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    order = list(dict.fromkeys(activity["activity"]))
    for model, rows in activity.groupby("model", sort=False):
        positions = [order.index(a) for a in rows["activity"]]
        axes.plot(positions, rows["rmse"].to_numpy(), marker="o", label=str(model))
    counts = activity.drop_duplicates("activity").set_index("activity")["n_test_ratings"]
    axes.set_xticks(range(len(order)), [f"{label}\n(n={counts[label]:,})" for label in order])
    axes.set_xlabel("user's training ratings")
    axes.set_ylabel("RMSE")
    axes.set_title("Error by user activity")
    axes.legend()
    return figure


# ---- the page -----------------------------------------------------------------------------
def html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["model", *table.columns])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>" for cells in formatted_rows(table))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(title: str, figure: Figure | None) -> str:
    if figure is None:
        return ""
    return f'<figure><img alt="{html.escape(title)}" src="{png_data_uri(figure)}"><figcaption>{html.escape(title)}</figcaption></figure>'


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:1em}"
)


def html_report(
    evaluation: Mapping[str, Mapping[str, Any]],
    k: int,
    protocol: str,
    curves: Mapping[str, pd.DataFrame],
    activity: pd.DataFrame,
    families: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """reports/report.html: one self-contained page (no external files, scripts or fonts)."""
    table = metrics_table(evaluation, k)
    labels = metric_labels(k)
    skipped = skipped_text(evaluation)
    sections = [
        "<h2>Metrics</h2>",
        html_table(table),
        f"<p>{html.escape(skipped)}</p>" if skipped else "",
    ]
    if objectives_markdown(evaluation, k, families or {}):
        objectives = objectives_table(evaluation, k, families or {})
        sections += ["<h2>Rating vs ranking objective</h2>", html_table(objectives), f"<p>{html.escape(WHY_RANKING)}</p>"]
    sections += [
        "<h2>Models compared</h2>",
        _figure_html("RMSE on the test split", bar_chart(table, labels["rmse"], BY_NAME["rmse"].lower_is_better)),
        _figure_html(labels["ndcg_at_k"], bar_chart(table, labels["ndcg_at_k"], BY_NAME["ndcg_at_k"].lower_is_better)),
    ]
    curve_parts = [_figure_html(f"{name} learning curve", curve_figure(name, curve)) for name, curve in curves.items()]
    if any(curve_parts):
        sections += ["<h2>Learning curves</h2>", *curve_parts]
    sections += ["<h2>Error by user activity</h2>", _figure_html("RMSE by user activity", activity_figure(activity))]
    body = "\n".join(part for part in sections if part)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Model evaluation</title>'
        f"<style>{STYLE}</style></head><body><h1>Model evaluation</h1><p>{html.escape(protocol)}</p>\n{body}\n</body></html>\n"
    )
