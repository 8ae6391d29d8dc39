"""The summary of accepted data, the reference new data are judged against, and the drift figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.data import drift
from pipeline.errors import DataError
from tests.factories import T, clean_movies, clean_ratings

OWN_META = {"source": "files", "fingerprint": "f1", "ids": {"user_id": "source", "movie_id": "hashed"}}


def summary(ratings: pd.DataFrame, fingerprint: str = "f1") -> dict:
    return drift.summarize(ratings, clean_movies(), {**OWN_META, "fingerprint": fingerprint})


def test_summarize_counts_ids_times_and_stars():
    assert summary(clean_ratings()) == {
        "fingerprint": "f1",
        "n_ratings": 6,
        "n_users": 3,
        "n_movies": 3,
        "id_types": {"user_id": "integer", "movie_id": "text"},
        "oldest_timestamp": T,
        "newest_timestamp": T + 5,
        "rating_histogram": {"0.5": 1, "1.5": 1, "2": 1, "3.5": 1, "4": 1, "5": 1},
    }


def test_without_id_rules_the_id_type_is_the_columns_dtype():
    ratings = clean_ratings().astype({"movie_id": "float64"})
    assert drift.summarize(ratings, clean_movies(), {"source": "synthetic"})["id_types"] == {"user_id": "integer", "movie_id": "float64"}


def test_a_summary_of_broken_data_does_not_raise():
    broken = pd.DataFrame({"user_id": [1], "rating": ["x"]})  # validation reports what is wrong
    found = drift.summarize(broken, clean_movies(), {})
    assert (found["n_ratings"], found["newest_timestamp"], found["rating_histogram"]) == (1, None, {})


def test_the_reference_is_the_last_accepted_data_or_the_one_before_for_the_same_data():
    first, second = summary(clean_ratings(), "f1"), summary(clean_ratings().head(5), "f2")
    assert drift.reference_for({}, "files", first) is None  # a source's first data
    accepted = drift.accept({}, "files", first)
    assert accepted == {"files": {"accepted": first, "previous": None}}
    assert drift.reference_for(accepted, "files", first) is None  # the same data again: judged as before
    assert drift.reference_for(accepted, "files", second) == first
    accepted = drift.accept(accepted, "files", second)
    assert accepted == {"files": {"accepted": second, "previous": first}}
    assert drift.reference_for(accepted, "files", second) == first
    assert drift.accept(accepted, "files", second) == accepted  # accepting it again changes nothing
    assert drift.reference_for(accepted, "sql", second) is None  # each source its own reference


def test_distances_between_two_histograms_of_stars():
    # shares before 0.5 / 0.5 / 0 and after 0 / 0.5 / 0.5: half of the mass moved from 1 to 3 stars
    tv, ks = drift.distribution_distances({"1": 2, "2": 2}, {"2": 1, "3": 1})
    assert (tv, ks) == (pytest.approx(0.5), pytest.approx(0.5))
    assert drift.distribution_distances({"1": 3, "5": 1}, {"5": 2, "1": 6}) == (0.0, 0.0)  # same shares
    assert drift.distribution_distances({"1": 1}, {"5": 1}) == (1.0, 1.0)  # no star in common
    # shares 0.25 / 0.25 / 0.5 and 0.5 / 0.25 / 0.25: tv = (0.25 + 0 + 0.25) / 2, ks = max(0.25, 0.25, 0)
    tv, ks = drift.distribution_distances({"1": 1, "3": 1, "5": 2}, {"1": 2, "3": 1, "5": 1})
    assert (tv, ks) == (pytest.approx(0.25), pytest.approx(0.25))
    # 0.5 sorts before 10 as a number, not as text
    assert drift.distribution_distances({"0.5": 1, "10": 1}, {"0.5": 1, "10": 1}) == (0.0, 0.0)


def test_drift_figures_compare_the_counts_and_the_stars():
    before = summary(clean_ratings().assign(rating=[1.0, 1.0, 2.0, 2.0, 2.0, 2.0]), "f1")
    after = summary(pd.concat([clean_ratings(), clean_ratings().assign(user_id=4)]).assign(rating=[2.0] * 9 + [3.0] * 3), "f2")
    figures = drift.drift_figures("files", before, after)
    assert figures["source"] == "files"
    assert "fingerprint" not in figures["previous"] and figures["current"]["rating_histogram"] == {"2": 9, "3": 3}
    assert (figures["n_ratings_change"], figures["n_ratings_change_ratio"]) == (6, 1.0)
    # shares 1/3, 2/3, 0 -> 0, 3/4, 1/4: tv = (1/3 + 1/12 + 1/4) / 2 = 1/3; ks = max(1/3, 1/4, 0) = 1/3
    assert (figures["rating_tv_distance"], figures["rating_ks_statistic"]) == (0.333333, 0.333333)


def test_drift_figures_of_a_first_batch_have_nothing_to_compare():
    figures = drift.drift_figures("files", None, summary(clean_ratings()))
    assert figures["previous"] is None and figures["current"]["n_ratings"] == 6
    changes = ("n_ratings_change", "n_ratings_change_ratio", "rating_tv_distance", "rating_ks_statistic")
    assert [figures[key] for key in changes] == [None] * 4


def test_reading_the_accepted_file(tmp_path):
    path = tmp_path / "accepted.json"
    assert drift.read_accepted(path) == {}
    path.write_text(json.dumps({"files": {"accepted": summary(clean_ratings()), "previous": None}}))
    assert drift.read_accepted(path)["files"]["previous"] is None
    path.write_text("{nope")
    with pytest.raises(DataError, match=rf"^{path}: not valid JSON .*delete it to start afresh"):
        drift.read_accepted(path)
    path.write_text('{"files": {"previous": null}}')
    with pytest.raises(DataError, match=rf"^{path}: expected \{{source: \{{'accepted': summary, 'previous': summary or null\}}\}}"):
        drift.read_accepted(path)
