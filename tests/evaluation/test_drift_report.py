"""The report's data-drift section, from the figures validate writes to metrics/drift.json."""

from __future__ import annotations

import pandas as pd

from pipeline.data.drift import drift_figures
from pipeline.evaluation.drift_report import drift_html, drift_markdown
from pipeline.evaluation.report import html_report, markdown_report

EVALUATION = {"bias": {"rmse": 0.9, "mae": 0.7, "n_test_ratings": 4, "cold": {"n_test_ratings": 0}}}
ACTIVITY = pd.DataFrame({"model": ["bias"], "activity": ["1-4"], "n_test_ratings": [4], "rmse": [0.9], "mae": [0.7]})


def summary(n_ratings: int, n_users: int, newest: int, histogram: dict[str, int]) -> dict:
    return {"n_ratings": n_ratings, "n_users": n_users, "n_movies": 5, "id_types": {}, "oldest_timestamp": 0, "newest_timestamp": newest,
            "rating_histogram": histogram}  # fmt: skip


# 8 ratings (1 star x4, 5 stars x4) on 2021-01-01, then 10 (1 x2, 4 x3, 5 x5) on 2021-02-01
DRIFT = drift_figures("files", summary(8, 3, 1_609_459_200, {"1": 4, "5": 4}), summary(10, 4, 1_612_137_600, {"1": 2, "4": 3, "5": 5}))
SUMMARY = (
    "Data source files: 8 ratings of 3 users in the previous accepted data, 10 of 4 now (+2, +25.0%); the newest rating "
    "from 2021-01-01 then, 2021-02-01 now (UTC). Distribution of stars: total-variation distance 0.3000, "
    "Kolmogorov-Smirnov statistic 0.3000 (0 = the same shares, 1 = no star value in common)."
)


def test_the_markdown_section_has_the_counts_distances_and_both_histograms():
    assert drift_markdown(DRIFT) == (
        "\n## Data drift since the previous accepted data\n\n"
        f"{SUMMARY}\n\n"
        "| stars | ratings before | share before | ratings after | share after | change in share |\n"
        "|---|---|---|---|---|---|\n"
        "| 1 | 4 | 50.0% | 2 | 20.0% | -30.0 pt |\n"
        "| 4 | 0 | 0.0% | 3 | 30.0% | +30.0 pt |\n"
        "| 5 | 4 | 50.0% | 5 | 50.0% | +0.0 pt |\n"
    )


def test_a_first_batch_says_there_is_nothing_to_compare_and_no_figures_no_section():
    first = drift_figures("sql", None, summary(8, 3, 0, {"1": 8}))
    assert drift_markdown(first) == (
        "\n## Data drift since the previous accepted data\n\n"
        "The first data accepted from sql: there is no previous accepted data to compare with.\n"
    )
    assert drift_markdown(None) == "" and drift_html(None) == []


def test_the_reports_end_with_the_section():
    assert markdown_report(EVALUATION, 10, "Protocol.", drift=DRIFT).endswith(drift_markdown(DRIFT))
    assert "Data drift" not in markdown_report(EVALUATION, 10, "Protocol.")
    page = html_report(EVALUATION, 10, "Protocol.", {}, ACTIVITY, drift=DRIFT)
    assert "<h2>Data drift since the previous accepted data</h2>" in page and f"<p>{SUMMARY}</p>" in page
    assert "<tr><td>4</td><td>0</td><td>0.0%</td><td>3</td><td>30.0%</td><td>+30.0 pt</td></tr>" in page
    assert "Data drift" not in html_report(EVALUATION, 10, "Protocol.", {}, ACTIVITY)
