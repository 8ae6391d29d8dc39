"""Stage `validate`: Great Expectations gate over data/raw/ -> reports/validation/.

The reports are written (atomically) whether or not the data passes, so a failure can be read in
reports/validation/summary.json and index.html (a self-contained page rendered from the summary,
beside Great Expectations' Data Docs); a failure then raises a DataError listing each failed
expectation, which makes `recsys validate` exit non-zero and DVC stop before the later stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import Params
from pipeline.data.schema import RatingScale
from pipeline.data.validation import (
    MOVIES_SUITE,
    RATINGS_SUITE,
    SUMMARY_FILE,
    ValidationOutcome,
    failure_message,
    validate_to_reports,
)
from pipeline.data.validation_page import write_page
from pipeline.errors import DataError, data_error
from pipeline.io import atomic_outputs, read_json
from pipeline.paths import Layout


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
    return {RATINGS_SUITE: str(layout.raw_ratings), MOVIES_SUITE: str(layout.raw_movies)}


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
    scale = RatingScale.from_meta(read_meta(layout.raw_meta), str(layout.raw_meta))
    with atomic_outputs(layout.validation_reports) as (tmp,):
        outcome = validate_to_reports(ratings, movies, scale, params.validate_params, tmp)
        write_page(tmp, suite_files(layout))  # in place of the Data Docs' index page, which needs a network
    if not outcome.success:
        raise DataError(failure_report(outcome, layout))
