"""The report: table, Markdown, and a self-contained HTML page naming every model."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd

from pipeline.evaluation.report import curve_figure, html_report, markdown_report, metrics_table

EVALUATION = {
    "cofi": {
        "rmse": 0.87654, "mae": 0.67, "precision_at_k": 0.1, "recall_at_k": 0.2, "ndcg_at_k": 0.15, "map_at_k": 0.05,
        "coverage": 0.3, "n_test_ratings": 20168, "n_ranked_users": 599, "cold": {"rmse": 0.99, "mae": 0.8, "n_test_ratings": 12},
    },
    "popularity": {
        "precision_at_k": 0.12, "recall_at_k": 0.1, "ndcg_at_k": 0.16, "map_at_k": 0.08, "coverage": 0.006,
        "n_test_ratings": 20168, "n_ranked_users": 599, "cold": {"n_test_ratings": 12},
    },
}  # fmt: skip
ACTIVITY = pd.DataFrame(
    {"model": ["cofi", "cofi"], "activity": ["1-4", "5-9"], "n_test_ratings": [3, 4], "rmse": [1.1, 0.9], "mae": [0.9, 0.7]}
)
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def test_metrics_table_has_a_row_per_model_and_blanks_for_missing_metrics():
    table = metrics_table(EVALUATION, k=10)
    assert list(table.index) == ["cofi", "popularity"]
    assert table.loc["cofi", "nDCG@10"] == 0.15 and table.loc["cofi", "cold RMSE"] == 0.99
    assert np.isnan(table.loc["popularity", "RMSE"])


def test_markdown_report_is_a_table_with_each_model():
    text = markdown_report(EVALUATION, 10, "Protocol sentence.")
    lines = text.splitlines()
    assert "Protocol sentence." in text
    header = next(line for line in lines if line.startswith("| model"))
    assert "| RMSE |" in header and "| P@10 |" in header and "| nDCG@10 |" in header
    assert "| cofi | 0.8765 | 0.6700 |" in text
    assert "| popularity | - | - | 0.1200 |" in text
    assert "20,168" in text


def test_html_report_is_one_offline_page_with_every_model_and_figure():
    curves = {"cofi": pd.DataFrame({"iteration": [0, 1, 2], "cost": [3.0, 2.0, 1.5]})}
    page = html_report(EVALUATION, 10, "Protocol.", curves, ACTIVITY)
    assert page.startswith("<!DOCTYPE html>")
    for name in EVALUATION:
        assert f"<td>{name}</td>" in page
    images = IMAGE.findall(page)
    assert len(images) == 4  # RMSE bars, nDCG bars, learning curve, error by activity
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert "Learning curves" in page and "Error by user activity" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere


def test_html_report_without_curves_or_rating_models_still_renders():
    only_popularity = {"popularity": EVALUATION["popularity"]}
    page = html_report(only_popularity, 10, "Protocol.", {}, ACTIVITY.head(0))
    assert "<td>popularity</td>" in page and "Learning curves" not in page
    assert len(IMAGE.findall(page)) == 1  # nDCG bars only


def test_learning_curves_plot_every_numeric_column_against_the_step_column():
    figure = curve_figure("content", pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}))
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "val_loss"]
    assert lines[0].get_xdata().tolist() == [1, 2]
    assert curve_figure("empty", pd.DataFrame({"epoch": []})) is None


FAMILIES = {"cofi": {"rating": "cofi", "ranking": "cofi_ranking"}, "content": {"rating": "content", "ranking": "content_ranking"}}
BOTH = {
    **EVALUATION,
    "cofi_ranking": {
        **{"precision_at_k": 0.22, "recall_at_k": 0.3, "ndcg_at_k": 0.31, "map_at_k": 0.2},
        **{"coverage": 0.05, "n_test_ratings": 20168},
    },
    "ease": {"skipped": "ease: 30,000 movies have a positive training rating, more than evaluate.ease.max_movies 20,000"},
}  # fmt: skip


def test_the_report_puts_each_familys_two_objectives_side_by_side_and_names_skipped_models():
    markdown = markdown_report(BOTH, 10, "protocol", FAMILIES)
    section = markdown.split("## Rating vs ranking objective")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| model", "| cofi", "| cofi_ranking", "| popularity"]
    assert "| cofi_ranking | cofi: ranking objective | 0.3100 |" in section
    assert "never learns which movies a user would choose" in section
    assert "ease was skipped: ease: 30,000 movies" in markdown and "| ease |" not in markdown
    page = html_report(BOTH, 10, "protocol", {}, ACTIVITY, FAMILIES)
    assert "Rating vs ranking objective" in page and "<td>cofi: ranking objective</td>" in page
    assert "ease was skipped" in page


def test_without_a_ranking_model_there_is_no_objectives_section():
    assert "Rating vs ranking" not in markdown_report(EVALUATION, 10, "protocol", FAMILIES)
