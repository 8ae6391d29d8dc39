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

from pipeline import paths
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
from pipeline.stages.inputs import require


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a raw parquet file as it is on disk (no conforming: validation judges it)."""
    require(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise data_error(str(path), f"not a readable parquet file ({type(exc).__name__}: {exc})") from None


def read_meta(path: Path) -> Any:
    require(path)
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise data_error(str(path), f"not valid JSON ({exc})") from None


def suite_files() -> dict[str, str]:
    """The file each suite checks."""
    return {RATINGS_SUITE: str(paths.RAW_RATINGS), MOVIES_SUITE: str(paths.RAW_MOVIES)}


def failure_report(outcome: ValidationOutcome, report_dir: Path) -> str:
    """The DataError text: a header pointing at the reports, then one line per failed expectation."""
    files = suite_files()
    header = (
        f"data validation failed: {len(outcome.failures)} of {len(outcome.checks)} expectations "
        f"(details: {report_dir / SUMMARY_FILE}, {report_dir / 'index.html'})"
    )
    return header + "\n" + failure_message(outcome, files)


def run(params: Params) -> None:
    ratings = read_parquet(paths.RAW_RATINGS)
    movies = read_parquet(paths.RAW_MOVIES)
    scale = RatingScale.from_meta(read_meta(paths.RAW_META), str(paths.RAW_META))
    with atomic_outputs(paths.VALIDATION_REPORTS) as (tmp,):
        outcome = validate_to_reports(ratings, movies, scale, params.validate_params, tmp)
        write_page(tmp, suite_files())  # in place of the Data Docs' index page, which needs a network
    if not outcome.success:
        raise DataError(failure_report(outcome, paths.VALIDATION_REPORTS))
