"""Validation suites: pure helpers, then Great Expectations runs on tiny hand-made frames.

Each negative case changes one thing in a clean dataset and asserts exactly which expectations fail,
with their count and an example. One GX run costs ~0.1-0.3 s once GX is imported (~5 s, once).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ValidateParams
from pipeline.data.schema import GENRE_VOCABULARY, RatingScale, conform_movies, conform_ratings
from pipeline.data.validation import (
    Check,
    ValidationOutcome,
    failure_line,
    genres_regex,
    movies_expectations,
    ratings_expectations,
    stable_html,
    unknown_movie_ids,
    validate_frames,
    validate_to_reports,
)
from pipeline.errors import DataError
from tests.factories import T, clean_movies, clean_ratings

SCALE = RatingScale(0.5, 5.0, 0.5)
PARAMS = ValidateParams(min_ratings=6, min_movies=3, min_users=3, min_timestamp=788_918_400)


def n_expectations() -> int:
    """How many expectations the two suites hold: counted, so that adding one breaks no test."""
    return len(ratings_expectations(SCALE, PARAMS, [])) + len(movies_expectations(PARAMS))


def failed(outcome: ValidationOutcome) -> dict[tuple[str, str, str | None], Check]:
    return {(c.suite, c.expectation, c.column): c for c in outcome.failures}


# ---- pure helpers -------------------------------------------------------------------------------


def test_rating_values_cover_the_scale_on_its_step() -> None:
    assert RatingScale(0.5, 5.0, 0.5).values() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert RatingScale(1.0, 5.0, 1.0).values() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert RatingScale(0.1, 0.5, 0.1).values() == [0.1, 0.2, 0.3, 0.4, 0.5]  # no 0.30000000000000004


@pytest.mark.parametrize(
    ("genres", "ok"),
    [
        ("", True),
        ("Drama", True),
        ("Film-Noir|Sci-Fi|IMAX", True),
        ("Drama|", False),
        ("|Drama", False),
        ("Drama||War", False),
        ("drama", False),
        ("Cartoon", False),
        ("Action|Cartoon", False),
        ("(no genres listed)", False),
    ],
)
def test_genres_regex(genres: str, ok: bool) -> None:
    assert bool(re.search(genres_regex(), genres)) is ok
    assert all(re.search(genres_regex(), g) for g in GENRE_VOCABULARY)


def test_unknown_movie_ids_lists_each_missing_id_once() -> None:
    ratings = pd.DataFrame({"movie_id": [10, 99, 99, 20, 77]})
    movies = pd.DataFrame({"movie_id": [10, 20]})
    assert unknown_movie_ids(ratings, movies) == [99, 77]
    assert unknown_movie_ids(ratings.rename(columns={"movie_id": "m"}), movies) == []


def test_scale_from_meta() -> None:
    assert RatingScale.from_meta({"rating_min": 1, "rating_max": 5, "rating_step": 1}) == RatingScale(1.0, 5.0, 1.0)
    half_stars = RatingScale(0.5, 5.0, 0.5)
    assert RatingScale.from_meta(half_stars.to_meta()) == half_stars and half_stars.bounds == (0.5, 5.0)
    with pytest.raises(DataError, match=r"data/raw/dataset.json: needs numeric rating_min, rating_max, rating_step"):
        RatingScale.from_meta({"rating_min": 1, "rating_max": 5}, "data/raw/dataset.json")
    for impossible in ((5, 1, 1), (1, 5, 0), (0.5, 5, 2)):
        with pytest.raises(DataError, match="impossible rating scale"):
            RatingScale.from_meta(dict(zip(("rating_min", "rating_max", "rating_step"), impossible, strict=True)))


def test_failure_line_formats_row_and_table_checks() -> None:
    row = Check("ratings", "expect_column_values_to_be_in_set", "rating", False, "outside the scale", 2, [7.0, 0.2])
    table = Check("ratings", "expect_table_row_count_to_be_between", None, False, "too few rows (need at least 100)", observed=5)
    assert failure_line(row, "r.parquet") == (
        "r.parquet: column 'rating': 2 rows outside the scale (e.g. 7.0, 0.2) [expect_column_values_to_be_in_set]"
    )
    assert failure_line(table, "r.parquet") == (
        "r.parquet: too few rows (need at least 100) (got 5) [expect_table_row_count_to_be_between]"
    )


def test_outcome_to_dict_groups_by_suite() -> None:
    outcome = ValidationOutcome(
        checks=[
            Check("ratings", "a", "x", True, "p", 0),
            Check("ratings", "b", None, False, "q", observed=3),
            Check("movies", "c", "y", True, "r", 0),
        ],
        counts={"n_ratings": 3},
    )
    summary = outcome.to_dict()
    assert (summary["success"], summary["evaluated"], summary["failed"]) == (False, 3, 1)
    assert summary["suites"]["ratings"]["success"] is False and summary["suites"]["ratings"]["failed"] == 1
    assert summary["suites"]["movies"] == {
        "success": True,
        "evaluated": 1,
        "failed": 0,
        "results": [
            {"expectation": "c", "column": "y", "success": True, "problem": "r", "unexpected_count": 0, "examples": [], "observed": None}
        ],
    }
    json.dumps(summary)


# ---- Great Expectations runs ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["as read from parquet", "as conformed"])
def test_clean_dataset_passes_every_expectation(form: str) -> None:
    ratings, movies = clean_ratings(), clean_movies()
    if form == "as conformed":  # object titles/genres, as conform_movies returns them
        ratings, movies = conform_ratings(ratings), conform_movies(movies)
        assert movies["title"].dtype == object
    outcome = validate_frames(ratings, movies, SCALE, PARAMS)
    assert outcome.failures == []
    assert outcome.success
    assert len(outcome.checks) == n_expectations()
    assert outcome.counts == {"n_ratings": 6, "n_users": 3, "n_rated_movies": 3, "n_movies": 3}


R, M = "ratings", "movies"
# case -> (ratings, movies, params, {(suite, expectation, column): (count, an expected example)})
CASES = {
    "rating out of scale": (
        clean_ratings().assign(rating=[4.0, 5.5, 5.0, 0.5, 2.0, 0.0]),
        clean_movies(),
        PARAMS,
        {(R, "expect_column_values_to_be_in_set", "rating"): (2, 5.5)},
    ),
    "rating off the half step": (
        clean_ratings().assign(rating=[4.0, 3.7, 5.0, 0.5, 2.0, 1.5]),
        clean_movies(),
        PARAMS,
        {(R, "expect_column_values_to_be_in_set", "rating"): (1, 3.7)},
    ),
    "duplicate (user, movie) pair": (
        pd.concat([clean_ratings(), clean_ratings().iloc[[0]].assign(rating=2.5)], ignore_index=True),
        clean_movies(),
        PARAMS,
        {(R, "expect_compound_columns_to_be_unique", "user_id,movie_id"): (2, {"user_id": 1, "movie_id": 10})},
    ),
    "rating of an unknown movie": (
        clean_ratings().assign(movie_id=[10, 20, 10, 99, 20, 30]),
        clean_movies(),
        PARAMS,
        {(R, "expect_column_values_to_not_be_in_set", "movie_id"): (1, 99)},
    ),
    "null user id": (
        clean_ratings().assign(user_id=[1, np.nan, 2, 2, 3, 3]),  # float64 with a NaN: bypasses conform
        clean_movies(),
        PARAMS,
        {
            (R, "expect_column_values_to_be_in_type_list", "user_id"): (None, "float64"),
            (R, "expect_column_values_to_not_be_null", "user_id"): (1, "row 1"),
        },
    ),
    "empty title": (
        clean_ratings(),
        clean_movies().assign(title=pd.array(["Toy Story (1995)", "  ", "Untitled"], dtype="str")),
        PARAMS,
        {(M, "expect_column_values_to_match_regex", "title"): (1, "  ")},
    ),
    "unknown genre": (
        clean_ratings(),
        clean_movies().assign(genres=pd.array(["Action|Cartoon", "Drama", ""], dtype="str")),
        PARAMS,
        {(M, "expect_column_values_to_match_regex", "genres"): (1, "Action|Cartoon")},
    ),
    "too few rows and users": (
        clean_ratings(),
        clean_movies(),
        ValidateParams(min_ratings=7, min_movies=4, min_users=4),
        {
            (R, "expect_table_row_count_to_be_between", None): (None, 6),
            (R, "expect_column_unique_value_count_to_be_between", "user_id"): (None, 3),
            (M, "expect_table_row_count_to_be_between", None): (None, 3),
        },
    ),
    "implausible timestamps": (
        clean_ratings().assign(timestamp=[T, 0, T, T, T * 1000, T]),  # 0 and one in milliseconds
        clean_movies(),
        PARAMS,
        {(R, "expect_column_values_to_be_between", "timestamp"): (2, T * 1000)},
    ),
    "timestamps after max_timestamp": (
        clean_ratings(),
        clean_movies(),
        PARAMS.model_copy(update={"max_timestamp": T + 3}),
        {(R, "expect_column_values_to_be_between", "timestamp"): (2, T + 4)},
    ),
    "float timestamp column": (
        clean_ratings().astype({"timestamp": "float64"}),
        clean_movies(),
        PARAMS,
        {(R, "expect_column_values_to_be_in_type_list", "timestamp"): (None, "float64")},
    ),
    "text in the rating column": (
        clean_ratings().astype({"rating": object}).assign(rating=[4.0, "4.5", 5.0, 0.5, 2.0, 1.5]),
        clean_movies(),
        PARAMS,
        {
            (R, "expect_column_values_to_be_in_type_list", "rating"): (6, "4.5"),  # object column: every row checked
            (R, "expect_column_values_to_be_in_set", "rating"): (1, "4.5"),
        },
    ),
    "int64 year (not nullable Int64)": (
        clean_ratings(),
        clean_movies().assign(year=np.array([1995, 1995, 2000], dtype="int64")),
        PARAMS,
        {(M, "expect_column_values_to_be_in_type_list", "year"): (None, "int64")},
    ),
    "extra column": (
        clean_ratings().assign(extra=1),
        clean_movies(),
        PARAMS,
        {(R, "expect_table_columns_to_match_set", None): (None, ["extra", "movie_id", "rating", "timestamp", "user_id"])},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_fails_exactly_its_expectations(case: str) -> None:
    ratings, movies, params, expected = CASES[case]
    outcome = validate_frames(ratings, movies, SCALE, params)
    failures = failed(outcome)
    assert set(failures) == set(expected)
    for key, (count, example) in expected.items():
        check = failures[key]
        assert check.unexpected_count == count
        if count is None:
            assert check.observed == example
        else:
            assert example in check.examples
    assert not outcome.success


def test_missing_column_is_reported_not_raised() -> None:
    outcome = validate_frames(clean_ratings().drop(columns="timestamp"), clean_movies(), SCALE, PARAMS)
    failures = failed(outcome)
    columns = failures[(R, "expect_table_columns_to_match_set", None)]
    assert columns.observed == ["movie_id", "rating", "user_id"]
    assert all(c.suite == R for c in outcome.failures)
    assert failures[(R, "expect_column_values_to_not_be_null", "timestamp")].problem.startswith("could not be checked")


def test_validate_to_reports_writes_summary_and_data_docs(tmp_path) -> None:
    outcome = validate_to_reports(clean_ratings(), clean_movies(), SCALE, PARAMS, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(outcome.to_dict()))
    assert summary["success"] is True and summary["evaluated"] == n_expectations()
    assert (tmp_path / "out" / "index.html").is_file()
    assert {p.name for p in (tmp_path / "out" / "expectations").iterdir()} == {"ratings.html", "movies.html"}


def test_validate_to_reports_gives_the_same_bytes_for_the_same_data(tmp_path) -> None:
    for out in ("a", "b"):
        validate_to_reports(clean_ratings(), clean_movies(), SCALE, PARAMS, tmp_path / out)
    files = {p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert files == {p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert [f for f in sorted(files) if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()] == []
    pages = "".join(p.read_text() for p in (tmp_path / "a").rglob("*.html"))
    assert "1970-01-01" in pages and "ge_load_time" not in pages  # the pinned run time, no load time
    assert "pandas_data_fingerprint" in pages  # what identifies the data stays


def test_stable_html_drops_load_time_queries_and_numbers_random_ids_in_order() -> None:
    first, second = "2d3001a8-1c34-47ae-a0fa-d5e6a1fba546", "d28fa188-d5b1-40a7-b57f-0aec45852001"
    page = (
        '<img src="logo.png?d=20261201T192755.205367Z"><img src="x.png?d=20261201T192755.2Z&dataContextId=7">'
        f'<a href="#body-{second}"></a><div id=body-{second}></div><div id=body-{first}></div>'
    )
    assert stable_html(page) == (
        '<img src="logo.png"><img src="x.png?dataContextId=7"><a href="#body-id1"></a><div id=body-id1></div><div id=body-id2></div>'
    )


# ---- against the previous accepted data -----------------------------------------------------------

DAY = 86_400
# the previous accepted data: 10 ratings, the newest at T + 5 (2001-09-09 01:46:45 UTC), integer user ids, text movie ids
REFERENCE = {
    "n_ratings": 10,
    "n_users": 3,
    "n_movies": 3,
    "id_types": {"user_id": "integer", "movie_id": "text"},
    "oldest_timestamp": T,
    "newest_timestamp": T + 5,
    "rating_histogram": {"4": 10},
}
HISTORY = ValidateParams(min_ratings=1, min_movies=3, min_users=1, max_rating_drop=0.25, max_days_ahead=30)


def id_map(*source_ids: str) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(1, len(source_ids) + 1), "source_id": pd.array(source_ids, dtype="str")})


def history_lines(ratings: pd.DataFrame, id_maps: dict | None = None) -> list[str]:
    """The failure lines of the checks against REFERENCE (files named as the validate stage names them)."""
    outcome = validate_frames(ratings, clean_movies(), SCALE, HISTORY, reference=REFERENCE, id_maps=id_maps)
    files = {"ratings": "ratings.parquet", "user_ids": "id_map/users.parquet", "movie_ids": "id_map/movies.parquet"}
    return [failure_line(check, files[check.suite]) for check in outcome.failures]


def eight_ratings(**changes) -> pd.DataFrame:
    """Eight ratings of three users at T .. T + 7 (8 of the previous 10: a drop of 20%)."""
    ratings = pd.concat([clean_ratings(), clean_ratings().head(2).assign(user_id=4)], ignore_index=True)
    return ratings.assign(timestamp=np.arange(8, dtype="int64") + T, **changes)


def test_new_data_like_the_previous_pass_every_check_against_it() -> None:
    ids = {"user_id": id_map("1", "2", "3", "4"), "movie_id": id_map("a", "20", "30")}
    outcome = validate_frames(eight_ratings(), clean_movies(), SCALE, HISTORY, reference=REFERENCE, id_maps=ids)
    assert outcome.failures == []
    assert len(outcome.checks) == n_expectations() + 2 + 2  # the drop and the future; one per id map
    assert {c.suite for c in outcome.checks} == {"ratings", "movies", "user_ids", "movie_ids"}


def test_a_drop_in_ratings_larger_than_the_param_fails_naming_both_counts() -> None:
    assert history_lines(eight_ratings().head(7)) == [
        "ratings.parquet: fewer ratings than validate.max_rating_drop 0.25 allows: the previous accepted data had 10, "
        "at least 8 are needed (got 7) [expect_table_row_count_to_be_between]"
    ]
    assert history_lines(eight_ratings()) == []  # 8 of 10: a drop of exactly 0.25 passes


def test_a_rating_from_the_future_fails_naming_the_bound_and_an_example() -> None:
    bound = T + 5 + 30 * DAY
    late = eight_ratings().assign(timestamp=[T, T, T, T, T, bound, bound + 1, bound + 7200])
    assert history_lines(late) == [
        "ratings.parquet: column 'timestamp': 2 rows from the future: later than 2001-10-09 01:46:45 UTC, the previous "
        "accepted data's newest rating (2001-09-09 01:46:45 UTC) + validate.max_days_ahead 30 days "
        f"(e.g. {bound + 1}, {bound + 7200}) [expect_column_values_to_be_between]"
    ]


def test_integer_ids_that_turn_into_text_fail_naming_the_text_ids() -> None:
    assert history_lines(eight_ratings(), {"user_id": id_map("1", "u2", "3", "u4")}) == [
        "id_map/users.parquet: column 'source_id': 2 rows are text, but the previous accepted data's user ids were integers: "
        "ingest hashes every user id now (the id rule), so no user keeps its id (e.g. 'u2', 'u4') [expect_column_values_to_match_regex]"
    ]
    assert history_lines(eight_ratings(), {"user_id": id_map("1", "-2", "30")}) == []


def test_text_ids_that_all_turn_into_integers_fail_and_some_integer_text_ids_pass() -> None:
    assert history_lines(eight_ratings(), {"movie_id": id_map("10", "20", "30")}) == [
        "id_map/movies.parquet: column 'source_id': 3 rows are whole numbers, as every movie id now is, but the previous "
        "accepted data's movie ids were text: ingest keeps them as numbers instead of hashing them now (the id rule), so "
        "no movie keeps its id (e.g. '10', '20', '30') [expect_column_values_to_not_match_regex]"
    ]
    # one id that is not a whole number keeps them all text (hashed): nothing changed
    assert history_lines(eight_ratings(), {"movie_id": id_map("10", "20", "007")}) == []
    assert history_lines(eight_ratings(), {"movie_id": id_map(*map(str, range(999)), "x")}) == []
