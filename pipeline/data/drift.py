"""The data validate accepted last, and how the current data differ from it.

`summarize` reduces ratings to a few figures: counts, the id types, the oldest and newest rating and
the histogram of stars. data/accepted.json keeps, per data source, the summary of the data accepted
last and of the data accepted before it:

    {"files": {"accepted": {...summary...}, "previous": {...summary...} | null}}

The reference the current data are judged against (`reference_for`) is the data accepted last, unless
the current data are that very data (validate runs again on accepted data, e.g. forced or after a code
change): then it is the data accepted before, so that a second run gives the same figures and reports.
validate rewrites the file only when the data pass (`accept`), so a rejected batch never becomes the
reference. `drift_figures` compares two summaries: the change in the number of ratings, and the
total-variation distance and Kolmogorov-Smirnov statistic between the two distributions of stars.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.ids import KEPT
from pipeline.data.schema import MOVIE, RATING, TIMESTAMP, USER
from pipeline.errors import data_error

INTEGER, TEXT = "integer", "text"  # a source's id type: every id a whole number, or not (pipeline/data/ids.py)
ACCEPTED, PREVIOUS = "accepted", "previous"
DIGITS = 6  # decimals of the drift figures


def id_types(meta: Mapping[str, Any], ratings: pd.DataFrame) -> dict[str, str]:
    """The type of each id kind in the source: from dataset.json's id rules (own data), else the column's dtype."""
    rules = meta.get("ids") or {}
    types = {}
    for column in (USER, MOVIE):
        if column in rules:
            types[column] = INTEGER if rules[column] == KEPT else TEXT
        elif column in ratings.columns:
            types[column] = INTEGER if pd.api.types.is_integer_dtype(ratings[column]) else str(ratings[column].dtype)
    return types


def star_label(value: float) -> str:
    return f"{value:g}"


def _numbers(ratings: pd.DataFrame, column: str) -> pd.Series:
    """The column's numeric values (empty when it is missing; non-numbers dropped: validation reports them)."""
    if column not in ratings.columns:
        return pd.Series([], dtype="float64")
    return pd.to_numeric(ratings[column], errors="coerce").dropna()


def summarize(ratings: pd.DataFrame, movies: pd.DataFrame, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one dataset that the next one is compared with (JSON-ready)."""
    stars = _numbers(ratings, RATING).value_counts().sort_index()
    times = _numbers(ratings, TIMESTAMP)
    return {
        "fingerprint": meta.get("fingerprint"),
        "n_ratings": len(ratings),
        "n_users": int(ratings[USER].nunique()) if USER in ratings.columns else 0,
        "n_movies": len(movies),
        "id_types": id_types(meta, ratings),
        "oldest_timestamp": int(times.min()) if len(times) else None,
        "newest_timestamp": int(times.max()) if len(times) else None,
        "rating_histogram": {star_label(float(star)): int(count) for star, count in stars.items()},
    }


def read_accepted(path: Path) -> dict[str, Any]:
    """data/accepted.json, or {} before anything was accepted."""
    if not path.is_file():
        return {}
    try:
        accepted = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fix = "restore it (git checkout, dvc checkout) or delete it to start afresh"
        raise data_error(str(path), f"not valid JSON ({exc}); {fix}") from None
    entries = accepted.values() if isinstance(accepted, dict) else [None]
    if not all(isinstance(entry, dict) and isinstance(entry.get(ACCEPTED), dict) for entry in entries):
        raise data_error(str(path), f"expected {{source: {{{ACCEPTED!r}: summary, {PREVIOUS!r}: summary or null}}}}")
    return accepted


def reference_for(accepted: Mapping[str, Any], source: str, current: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary the current data are judged against: the source's last accepted data, or the data
    accepted before it when the current data are the last accepted; None for a source's first data."""
    entry = accepted.get(source)
    if entry is None:
        return None
    return entry.get(PREVIOUS) if entry[ACCEPTED] == current else entry[ACCEPTED]


def accept(accepted: Mapping[str, Any], source: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """data/accepted.json once the current data passed: they become the source's accepted data."""
    entry = accepted.get(source)
    if entry is not None and entry[ACCEPTED] == current:
        return dict(accepted)
    return {**accepted, source: {ACCEPTED: dict(current), PREVIOUS: None if entry is None else entry[ACCEPTED]}}


def shares(histogram: Mapping[str, int], labels: list[str]) -> np.ndarray:
    counts = np.array([histogram.get(label, 0) for label in labels], dtype=np.float64)
    return counts / counts.sum() if counts.sum() > 0 else counts


def distribution_distances(before: Mapping[str, int], after: Mapping[str, int]) -> tuple[float, float]:
    """(total-variation distance, Kolmogorov-Smirnov statistic) between two histograms of stars:
    half the summed absolute difference of the shares, and the largest gap between the cumulative shares."""
    labels = sorted({*before, *after}, key=float)
    p, q = shares(before, labels), shares(after, labels)
    return float(0.5 * np.abs(p - q).sum()), float(np.abs(np.cumsum(p) - np.cumsum(q)).max(initial=0.0))


def _public(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if summary is None else {key: value for key, value in summary.items() if key != "fingerprint"}


def drift_figures(source: str, reference: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """Both summaries and what changed (null without a previous accepted data): validate writes the
    numbers to metrics/drift.json, the source, id types and nulls to records/drift.json."""
    figures: dict[str, Any] = {"source": source, PREVIOUS: _public(reference), "current": _public(current)}
    if reference is None:
        return {**figures, **dict.fromkeys(("n_ratings_change", "n_ratings_change_ratio", "rating_tv_distance", "rating_ks_statistic"))}
    change = current["n_ratings"] - reference["n_ratings"]
    tv, ks = distribution_distances(reference["rating_histogram"], current["rating_histogram"])
    return {
        **figures,
        "n_ratings_change": change,
        "n_ratings_change_ratio": round(change / reference["n_ratings"], DIGITS) if reference["n_ratings"] else None,
        "rating_tv_distance": round(tv, DIGITS),
        "rating_ks_statistic": round(ks, DIGITS),
    }
