"""Stage `validate` in a temporary repository: reports written, failures raise one readable DataError."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import parse_params
from pipeline.data.schema import RatingScale
from pipeline.data.validation import movies_expectations, ratings_expectations
from pipeline.errors import DataError
from pipeline.paths import Layout
from pipeline.stages import validate as validate_stage
from tests.factories import clean_movies, clean_ratings, layout_with

PARAMS = parse_params({"validate": {"min_ratings": 6, "min_movies": 3, "min_users": 3}})
META = {"source": "test", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5}


def write_raw(root: Path, ratings: pd.DataFrame, movies: pd.DataFrame, meta: dict | None = None) -> Layout:
    return layout_with(root, ratings=ratings, movies=movies, dataset=META if meta is None else meta)


def n_expectations() -> int:
    """How many expectations the two suites hold (counted, so adding one does not break the tests)."""
    scale = RatingScale.from_meta(META)
    return len(ratings_expectations(scale, PARAMS.validate_params, [])) + len(movies_expectations(PARAMS.validate_params))


def summary(layout: Layout) -> dict:
    return json.loads((layout.validation_reports / "summary.json").read_text(encoding="utf-8"))


def test_clean_data_writes_summary_and_data_docs(tmp_path: Path) -> None:
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    validate_stage.run(PARAMS, layout)
    report = summary(layout)
    assert report["success"] is True
    assert report["counts"] == {"n_ratings": 6, "n_users": 3, "n_rated_movies": 3, "n_movies": 3}
    assert set(report["suites"]) == {"ratings", "movies"}
    page = (layout.validation_reports / "index.html").read_text(encoding="utf-8")
    n = n_expectations()
    assert "<title>Data validation: passed</title>" in page and f"{n} of {n} expectations passed" in page
    assert "https://" not in page  # our own page, not the Data Docs index that loads from CDNs
    assert (layout.validation_reports / "expectations" / "ratings.html").is_file()
    assert '<a href="expectations/ratings.html">' in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "reports"]  # GX leaves nothing else behind


def test_failing_data_raises_readable_error_and_keeps_the_report(tmp_path: Path) -> None:
    layout = write_raw(tmp_path, clean_ratings().assign(rating=[4.0, 7.0, 5.0, 0.5, 2.0, 1.5]), clean_movies())
    with pytest.raises(DataError) as caught:
        validate_stage.run(PARAMS, layout)
    lines = str(caught.value).splitlines()
    reports = layout.validation_reports
    assert lines == [
        f"data validation failed: 1 of {n_expectations()} expectations (details: {reports / 'summary.json'}, {reports / 'index.html'})",
        f"{layout.raw_ratings}: column 'rating': 1 row outside the scale 0.5..5 in steps of 0.5 (e.g. 7.0) "
        "[expect_column_values_to_be_in_set]",
    ]
    assert summary(layout)["success"] is False
    assert summary(layout)["suites"]["ratings"]["failed"] == 1
    page = (layout.validation_reports / "index.html").read_text(encoding="utf-8")
    n = n_expectations()
    assert f"{n - 1} of {n} expectations passed, 1 failed." in page and '<td class="number">1</td>' in page


def test_scale_comes_from_dataset_json(tmp_path: Path) -> None:
    layout = write_raw(tmp_path, clean_ratings(), clean_movies(), {**META, "rating_min": 1.0, "rating_step": 1.0})
    with pytest.raises(DataError, match=r"3 rows outside the scale 1..5 in steps of 1 \(e.g. 3.5, 0.5, 1.5\)"):
        validate_stage.run(PARAMS, layout)


@pytest.mark.parametrize("missing", ["raw_ratings", "raw_movies", "raw_meta"])
def test_missing_input_names_the_file_and_writes_nothing(tmp_path: Path, missing: str) -> None:
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    getattr(layout, missing).unlink()
    with pytest.raises(DataError, match=f"^{re.escape(str(getattr(layout, missing)))}: not found; run the ingest stage first"):
        validate_stage.run(PARAMS, layout)
    assert not layout.reports.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"rating_min": 0.5, "rating_max": 5.0}', "needs numeric rating_min, rating_max, rating_step"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_dataset_json(tmp_path: Path, content: str, message: str) -> None:
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    layout.raw_meta.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"^{re.escape(str(layout.raw_meta))}: {message}"):
        validate_stage.run(PARAMS, layout)


def test_corrupt_parquet(tmp_path: Path) -> None:
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    layout.raw_movies.write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=f"^{re.escape(str(layout.raw_movies))}: not a readable parquet file"):
        validate_stage.run(PARAMS, layout)


def test_the_reports_of_the_same_data_and_params_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs, the second with the clock a year later: the same reports/validation tree, byte for byte."""
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    validate_stage.run(PARAMS, layout)
    first = tree(layout.validation_reports)
    shutil.rmtree(layout.validation_reports)
    clock = time.time
    monkeypatch.setattr(time, "time", lambda: clock() + 365 * 86_400)
    validate_stage.run(PARAMS, layout)
    second = tree(layout.validation_reports)
    assert sorted(first) == sorted(second)
    assert [name for name in sorted(first) if first[name] != second[name]] == []


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
