"""Stage `validate` in a temporary repository: reports written, failures raise one readable DataError."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import paths
from pipeline.config import parse_params
from pipeline.errors import DataError
from pipeline.io import write_json
from pipeline.stages import validate as validate_stage
from tests.factories import clean_movies, clean_ratings

PARAMS = parse_params({"validate": {"min_ratings": 6, "min_movies": 3, "min_users": 3}})
META = {"source": "test", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5}


def write_raw(ratings: pd.DataFrame, movies: pd.DataFrame, meta: dict | None = None) -> None:
    paths.RAW.mkdir(parents=True, exist_ok=True)
    ratings.to_parquet(paths.RAW_RATINGS, index=False)
    movies.to_parquet(paths.RAW_MOVIES, index=False)
    write_json(paths.RAW_META, META if meta is None else meta)


def summary() -> dict:
    return json.loads((paths.VALIDATION_REPORTS / "summary.json").read_text(encoding="utf-8"))


def test_clean_data_writes_summary_and_data_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies())
    validate_stage.run(PARAMS)
    report = summary()
    assert report["success"] is True
    assert report["counts"] == {"n_ratings": 6, "n_users": 3, "n_rated_movies": 3, "n_movies": 3}
    assert set(report["suites"]) == {"ratings", "movies"}
    page = (paths.VALIDATION_REPORTS / "index.html").read_text(encoding="utf-8")
    assert "<title>Data validation: passed</title>" in page and "27 of 27 expectations passed" in page
    assert "https://" not in page  # our own page, not the Data Docs index that loads from CDNs
    assert (paths.VALIDATION_REPORTS / "expectations" / "ratings.html").is_file()
    assert '<a href="expectations/ratings.html">' in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "reports"]  # GX leaves nothing else behind


def test_failing_data_raises_readable_error_and_keeps_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings().assign(rating=[4.0, 7.0, 5.0, 0.5, 2.0, 1.5]), clean_movies())
    with pytest.raises(DataError) as caught:
        validate_stage.run(PARAMS)
    lines = str(caught.value).splitlines()
    assert lines == [
        "data validation failed: 1 of 27 expectations "
        "(details: reports/validation/summary.json, reports/validation/index.html)",
        "data/raw/ratings.parquet: column 'rating': 1 row outside the scale 0.5..5 in steps of 0.5 (e.g. 7.0) "
        "[expect_column_values_to_be_in_set]",
    ]
    assert summary()["success"] is False
    assert summary()["suites"]["ratings"]["failed"] == 1
    page = (paths.VALIDATION_REPORTS / "index.html").read_text(encoding="utf-8")
    assert "26 of 27 expectations passed, 1 failed." in page and '<td class="number">1</td>' in page


def test_scale_comes_from_dataset_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies(), {**META, "rating_min": 1.0, "rating_step": 1.0})
    with pytest.raises(DataError, match=r"3 rows outside the scale 1..5 in steps of 1 \(e.g. 3.5, 0.5, 1.5\)"):
        validate_stage.run(PARAMS)


@pytest.mark.parametrize("missing", [paths.RAW_RATINGS, paths.RAW_MOVIES, paths.RAW_META])
def test_missing_input_names_the_file_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies())
    missing.unlink()
    with pytest.raises(DataError, match=f"^{missing}: not found; run the ingest stage first"):
        validate_stage.run(PARAMS)
    assert not paths.REPORTS.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"rating_min": 0.5, "rating_max": 5.0}', "needs numeric rating_min, rating_max, rating_step"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_dataset_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies())
    paths.RAW_META.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"^data/raw/dataset.json: {message}"):
        validate_stage.run(PARAMS)


def test_corrupt_parquet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies())
    paths.RAW_MOVIES.write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"^data/raw/movies.parquet: not a readable parquet file"):
        validate_stage.run(PARAMS)


def test_the_reports_of_the_same_data_and_params_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs, the second with the clock a year later: the same reports/validation tree, byte for byte."""
    monkeypatch.chdir(tmp_path)
    write_raw(clean_ratings(), clean_movies())
    validate_stage.run(PARAMS)
    first = tree(paths.VALIDATION_REPORTS)
    shutil.rmtree(paths.VALIDATION_REPORTS)
    clock = time.time
    monkeypatch.setattr(time, "time", lambda: clock() + 365 * 86_400)
    validate_stage.run(PARAMS)
    second = tree(paths.VALIDATION_REPORTS)
    assert sorted(first) == sorted(second)
    assert [name for name in sorted(first) if first[name] != second[name]] == []


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
