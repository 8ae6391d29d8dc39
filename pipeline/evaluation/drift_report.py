"""The report's data-drift section: the data this run was trained on against the data accepted before it.

It reads what validate wrote to metrics/drift.json and records/drift.json (pipeline/data/drift.py,
joined by pipeline/records.py): the number of ratings
before and after, the histogram of stars before and after with each star's share, and two distances
between the distributions of stars (total variation, Kolmogorov-Smirnov).
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping
from typing import Any

TITLE = "Data drift since the previous accepted data"
COLUMNS = ("stars", "ratings before", "share before", "ratings after", "share after", "change in share")


def day(seconds: int | None) -> str:
    """A unix time as its UTC date."""
    return "-" if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d")


def drift_rows(drift: Mapping[str, Any]) -> list[list[str]]:
    """One row per star value found before or after, in star order, as text."""
    before, after = drift["previous"]["rating_histogram"], drift["current"]["rating_histogram"]
    total_before, total_after = sum(before.values()) or 1, sum(after.values()) or 1
    rows = []
    for star in sorted({*before, *after}, key=float):
        share_before, share_after = before.get(star, 0) / total_before, after.get(star, 0) / total_after
        rows.append(
            [
                star,
                f"{before.get(star, 0):,}",
                f"{share_before:.1%}",
                f"{after.get(star, 0):,}",
                f"{share_after:.1%}",
                f"{100 * (share_after - share_before):+.1f} pt",
            ]
        )
    return rows


def drift_summary(drift: Mapping[str, Any]) -> str:
    """One paragraph: the counts before and after, and the two distances (or why there is nothing to compare)."""
    source = drift.get("source", "unknown")
    if drift.get("previous") is None:
        return f"The first data accepted from {source}: there is no previous accepted data to compare with."
    before, after = drift["previous"], drift["current"]
    ratio = drift["n_ratings_change_ratio"]
    change = f"{drift['n_ratings_change']:+,}" + ("" if ratio is None else f", {ratio:+.1%}")
    return (
        f"Data source {source}: {before['n_ratings']:,} ratings of {before['n_users']:,} users in the previous accepted "
        f"data, {after['n_ratings']:,} of {after['n_users']:,} now ({change}); the newest rating from "
        f"{day(before['newest_timestamp'])} then, {day(after['newest_timestamp'])} now (UTC). Distribution of stars: total-variation "
        f"distance {drift['rating_tv_distance']:.4f}, Kolmogorov-Smirnov statistic {drift['rating_ks_statistic']:.4f} "
        "(0 = the same shares, 1 = no star value in common)."
    )


def drift_markdown(drift: Mapping[str, Any] | None) -> str:
    """The section in markdown; "" without drift figures (validate wrote none)."""
    if drift is None:
        return ""
    parts = [f"\n## {TITLE}\n\n{drift_summary(drift)}\n"]
    if drift.get("previous") is not None:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in drift_rows(drift)]
        parts.append("\n" + "\n".join(lines) + "\n")
    return "".join(parts)


def drift_html(drift: Mapping[str, Any] | None) -> list[str]:
    """The section as HTML parts of the report page; [] without drift figures."""
    if drift is None:
        return []
    parts = [f"<h2>{html.escape(TITLE)}</h2>", f"<p>{html.escape(drift_summary(drift))}</p>"]
    if drift.get("previous") is not None:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in drift_rows(drift))
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return parts
