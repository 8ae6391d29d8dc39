"""Stage `validate` in a temporary repository: reports written, failures raise one readable DataError."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import records
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "metrics", "records", "reports"]  # GX leaves nothing else behind
    assert sorted(p.name for p in layout.data.iterdir()) == ["accepted.json", "raw"]
    assert [p.name for p in layout.metrics.iterdir()] == [p.name for p in layout.records.iterdir()] == ["drift.json"]
    # the first accepted data: no previous ones, so the record holds the nulls beside the source and id types
    assert set(json.loads(layout.drift.read_text())) == {"current"}
    record = json.loads(layout.record_of(layout.drift).read_text())
    assert (record["source"], record["previous"], record["n_ratings_change"]) == ("test", None, None)
    assert set(record["current"]) == {"id_types"}


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


# ---- own data against the data accepted before ------------------------------------------------------

OWN = {**META, "source": "files", "ids": {"user_id": "source", "movie_id": "source"}}
DAY = 86_400


def write_own(root: Path, ratings: pd.DataFrame, user_ids: list[str] | None = None) -> Layout:
    """data/raw/ of own data: ratings over clean_movies(), dataset.json with the id rules, the id maps."""
    users = [str(u) for u in sorted(ratings["user_id"].unique())] if user_ids is None else user_ids
    rule = "source" if all(u.isdigit() for u in users) else "hashed"
    layout = write_raw(root, ratings, clean_movies(), {**OWN, "ids": {"user_id": rule, "movie_id": "source"}})
    layout.raw_id_map.mkdir(exist_ok=True)
    pd.DataFrame({"user_id": range(1, len(users) + 1), "source_id": users}).to_parquet(layout.raw_id_map / "users.parquet")
    pd.DataFrame({"movie_id": [10, 20, 30], "source_id": ["10", "20", "30"]}).to_parquet(layout.raw_id_map / "movies.parquet")
    return layout


def newer(ratings: pd.DataFrame, days: int) -> pd.DataFrame:
    """A second batch: each of the ratings' users rates one more movie, `days` after the newest rating."""
    extra = pd.DataFrame({"user_id": [1, 2, 3], "movie_id": [30, 20, 10], "rating": [5.0, 5.0, 4.5]})
    return pd.concat([ratings, extra.assign(timestamp=int(ratings["timestamp"].max()) + days * DAY)], ignore_index=True)


def new_user(ratings: pd.DataFrame, days: int) -> pd.DataFrame:
    """A user 4 who rates every movie, `days` after the newest rating."""
    extra = pd.DataFrame({"user_id": 4, "movie_id": [10, 20, 30], "rating": 3.0, "timestamp": int(ratings["timestamp"].max()) + days * DAY})
    return pd.concat([ratings, extra], ignore_index=True)


def test_accepted_batches_become_the_reference_and_the_drift_compares_the_last_two(tmp_path: Path) -> None:
    first = clean_ratings()
    validate_stage.run(PARAMS, write_own(tmp_path, first))
    layout = write_own(tmp_path, newer(first, 30))
    validate_stage.run(PARAMS, layout)
    accepted = json.loads(layout.accepted_data.read_text())
    assert list(accepted) == ["files"]
    assert (accepted["files"]["previous"]["n_ratings"], accepted["files"]["accepted"]["n_ratings"]) == (6, 9)
    figures = json.loads(layout.drift.read_text())
    assert (figures["previous"]["n_ratings"], figures["current"]["n_ratings"], figures["n_ratings_change"]) == (6, 9, 3)
    assert figures["current"]["rating_histogram"] == {"0.5": 1, "1.5": 1, "2": 1, "3.5": 1, "4": 1, "4.5": 1, "5": 3}
    # shares before 1/6 each of 0.5 1.5 2 3.5 4 5; after 1/9 each, 3/9 at 5: tv = 5 (1/6 - 1/9) = 0.2777...
    assert figures["rating_tv_distance"] == 0.277778
    assert summary(layout)["suites"]["user_ids"]["success"] is True


def drift_bytes(layout: Layout) -> tuple[bytes, bytes]:
    """metrics/drift.json and records/drift.json as written."""
    return layout.drift.read_bytes(), layout.record_of(layout.drift).read_bytes()


def test_validating_accepted_data_again_gives_the_same_bytes(tmp_path: Path) -> None:
    validate_stage.run(PARAMS, write_own(tmp_path, clean_ratings()))
    layout = write_own(tmp_path, newer(clean_ratings(), 30))
    validate_stage.run(PARAMS, layout)
    before = {**tree(layout.validation_reports), "accepted": layout.accepted_data.read_bytes(), "drift": drift_bytes(layout)}
    validate_stage.run(PARAMS, layout)  # e.g. dvc repro --force: judged against the same reference again
    after = {**tree(layout.validation_reports), "accepted": layout.accepted_data.read_bytes(), "drift": drift_bytes(layout)}
    assert [name for name in sorted(before) if before[name] != after.get(name)] == []


@pytest.mark.parametrize(
    ("batch", "line"),
    [
        (
            lambda first: first.head(7),
            "data/raw/ratings.parquet: fewer ratings than validate.max_rating_drop 0.1 allows: the previous accepted data had 9, "
            "at least 9 are needed (got 7) [expect_table_row_count_to_be_between]",
        ),
        (
            lambda first: new_user(first, 400),
            "data/raw/ratings.parquet: column 'timestamp': 3 rows from the future: later than 2002-10-12 01:46:45 UTC, the "
            "previous accepted data's newest rating (2001-10-11 01:46:45 UTC) + validate.max_days_ahead 366 days "
            "(e.g. 1037324805) [expect_column_values_to_be_between]",
        ),
    ],
    ids=["rating-count drop", "ratings from the future"],
)
def test_a_rejected_batch_fails_with_one_line_and_leaves_the_reference_and_drift_alone(tmp_path: Path, batch, line: str) -> None:
    validate_stage.run(PARAMS, write_own(tmp_path, clean_ratings()))
    first = newer(clean_ratings(), 32)
    layout = write_own(tmp_path, first)
    validate_stage.run(PARAMS, layout)
    kept = (layout.accepted_data.read_bytes(), drift_bytes(layout))
    write_own(tmp_path, batch(first))
    with pytest.raises(DataError) as caught:
        validate_stage.run(PARAMS, Layout(tmp_path))
    assert str(caught.value).splitlines()[1:] == [f"{tmp_path}/{line}"]
    assert (layout.accepted_data.read_bytes(), drift_bytes(layout)) == kept
    assert summary(layout)["success"] is False  # the report says why


def test_integer_user_ids_turning_into_text_are_rejected(tmp_path: Path) -> None:
    validate_stage.run(PARAMS, write_own(tmp_path, clean_ratings()))
    layout = write_own(tmp_path, newer(clean_ratings(), 1), user_ids=["1", "2", "u3"])
    kept = layout.accepted_data.read_bytes()
    with pytest.raises(DataError) as caught:
        validate_stage.run(PARAMS, layout)
    assert str(caught.value).splitlines()[1:] == [
        f"{layout.raw_id_map / 'users.parquet'}: column 'source_id': 1 row are text, but the previous accepted data's user ids "
        "were integers: ingest hashes every user id now (the id rule), so no user keeps its id (e.g. 'u3') "
        "[expect_column_values_to_match_regex]"
    ]
    assert layout.accepted_data.read_bytes() == kept


def test_other_sources_report_their_drift_without_the_checks(tmp_path: Path) -> None:
    """Synthetic data and MovieLens releases change only with their params: a smaller synthetic dataset passes."""
    validate_stage.run(PARAMS, write_raw(tmp_path, newer(clean_ratings(), 1), clean_movies()))
    layout = write_raw(tmp_path, clean_ratings(), clean_movies())
    validate_stage.run(PARAMS, layout)
    figures = records.read(layout.drift, layout.record_of(layout.drift))
    assert (figures["source"], figures["n_ratings_change"], figures["n_ratings_change_ratio"]) == ("test", -3, -0.333333)
    assert set(summary(layout)["suites"]) == {"ratings", "movies"}
