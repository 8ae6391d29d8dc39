"""Stage `validate`: Great Expectations gate over data/raw/ -> reports/validation/, and for accepted
data data/accepted.json and metrics/drift.json (its data source and id types in records/drift.json).

The reports are written (atomically) whether or not the data passes, so a failure can be read in
reports/validation/summary.json and index.html (a self-contained page rendered from the summary,
beside Great Expectations' Data Docs); a failure then raises a DataError listing each failed
expectation, which makes `recsys validate` exit non-zero and DVC stop before the later stages.

Own data (data.source files | sql) are also checked against the data validate accepted last from
the same source (data/accepted.json, a DVC output kept between runs: `persist`): no larger drop in
the number of ratings than validate.max_rating_drop, no rating from the future, no change of id type.
Only data that pass replace that reference and write metrics/drift.json (pipeline/data/drift.py), so a
rejected batch changes neither. Other sources are defined by params, so their drift is only reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import records
from pipeline.choices import OWN_SOURCES
from pipeline.config import Params
from pipeline.data import drift
from pipeline.data.schema import MOVIE, USER, RatingScale
from pipeline.data.validation import (
    ID_SUITES,
    MOVIES_SUITE,
    RATINGS_SUITE,
    SUMMARY_FILE,
    ValidationOutcome,
    failure_message,
    validate_to_reports,
)
from pipeline.data.validation_page import write_page
from pipeline.errors import DataError, data_error
from pipeline.io import atomic_outputs, read_json, write_json
from pipeline.paths import ID_MAP_MOVIES, ID_MAP_USERS, Layout

ID_MAP_FILES = {USER: ID_MAP_USERS, MOVIE: ID_MAP_MOVIES}


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a raw parquet file as it is on disk (no conforming: validation judges it)."""
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise data_error(str(path), f"not a readable parquet file ({type(exc).__name__}: {exc})") from None


def read_meta(path: Path) -> Any:
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise data_error(str(path), f"not valid JSON ({exc})") from None


def suite_files(layout: Layout) -> dict[str, str]:
    """The file each suite checks."""
    ids = {ID_SUITES[kind]: str(layout.raw_id_map / name) for kind, name in ID_MAP_FILES.items()}
    return {RATINGS_SUITE: str(layout.raw_ratings), MOVIES_SUITE: str(layout.raw_movies), **ids}


def read_id_maps(layout: Layout, meta: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """data/raw/id_map/ tables of own data (dataset.json names their id rules), by id kind."""
    if not meta.get("ids"):
        return {}
    paths = {kind: layout.raw_id_map / name for kind, name in ID_MAP_FILES.items()}
    layout.require(*paths.values())
    return {kind: read_parquet(path) for kind, path in paths.items()}


def failure_report(outcome: ValidationOutcome, layout: Layout) -> str:
    """The DataError text: a header pointing at the reports, then one line per failed expectation."""
    files, report_dir = suite_files(layout), layout.validation_reports
    header = (
        f"data validation failed: {len(outcome.failures)} of {len(outcome.checks)} expectations "
        f"(details: {report_dir / SUMMARY_FILE}, {report_dir / 'index.html'})"
    )
    return header + "\n" + failure_message(outcome, files)


def run(params: Params, layout: Layout) -> None:
    layout.require(layout.raw_ratings, layout.raw_movies, layout.raw_meta)
    ratings = read_parquet(layout.raw_ratings)
    movies = read_parquet(layout.raw_movies)
    meta = read_meta(layout.raw_meta)
    scale = RatingScale.from_meta(meta, str(layout.raw_meta))
    id_maps = read_id_maps(layout, meta)
    source = str(meta.get("source", "unknown"))
    accepted = drift.read_accepted(layout.accepted_data)
    current = drift.summarize(ratings, movies, meta)
    reference = drift.reference_for(accepted, source, current)
    gated = reference if source in OWN_SOURCES else None  # other sources change only with their params
    with atomic_outputs(layout.validation_reports) as (tmp,):
        outcome = validate_to_reports(ratings, movies, scale, params.validate_params, tmp, reference=gated, id_maps=id_maps)
        write_page(tmp, suite_files(layout))  # in place of the Data Docs' index page, which needs a network
        if outcome.success:
            outputs = (layout.accepted_data, layout.drift, layout.record_of(layout.drift))
            with atomic_outputs(*outputs) as (accepted_tmp, drift_tmp, record_tmp):
                write_json(accepted_tmp, drift.accept(accepted, source, current))
                records.write(drift_tmp, record_tmp, drift.drift_figures(source, reference, current))
    if not outcome.success:
        raise DataError(failure_report(outcome, layout))
