"""Shared model-contract pieces: catalogue lookup, seen items, vectorized top-n."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.models.base import (
    Catalogue,
    SeenItems,
    check_pairs,
    concatenated_ranges,
    index_of,
    recommendation_frame,
    top_n,
)


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.from_movies(pd.DataFrame({"movie_id": [30, 10, 20], "title": ["C", "A", "B"]}))


def test_catalogue_is_sorted_by_id_and_finds_positions(catalogue: Catalogue):
    assert list(catalogue.movie_ids) == [10, 20, 30]
    assert list(catalogue.titles) == ["A", "B", "C"]
    assert list(catalogue.index(np.array([30, 99, 10]))) == [2, -1, 0]
    restored = Catalogue.from_arrays({k: v.copy() for k, v in catalogue.to_arrays().items()})
    assert restored.movie_ids.tolist() == [10, 20, 30] and restored.titles.tolist() == ["A", "B", "C"]


def test_index_of_an_empty_reference_is_all_unknown():
    assert list(index_of(np.array([1, 2]), np.array([], dtype=np.int64))) == [-1, -1]


def test_seen_items_per_user_and_as_a_mask(catalogue: Catalogue):
    ratings = pd.DataFrame({"user_id": [7, 7, 3], "movie_id": [30, 10, 20]})
    seen = SeenItems.from_ratings(ratings, catalogue)
    assert list(seen.of(7)) == [0, 2]
    assert list(seen.of(3)) == [1]
    assert list(seen.of(999)) == []
    mask = seen.mask(np.array([3, 999, 7]), len(catalogue))
    assert mask.tolist() == [[False, True, False], [False, False, False], [True, False, True]]
    restored = SeenItems.from_arrays(seen.to_arrays())
    assert list(restored.of(7)) == [0, 2]


def test_seen_items_refuse_movies_outside_the_catalogue(catalogue: Catalogue):
    with pytest.raises(DataError, match="missing from the catalogue"):
        SeenItems.from_ratings(pd.DataFrame({"user_id": [1], "movie_id": [55]}), catalogue)


def test_concatenated_ranges_matches_the_loop():
    starts, lengths = np.array([5, 0, 2, 9]), np.array([2, 0, 3, 1])
    expected = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
    assert list(concatenated_ranges(starts, lengths)) == list(expected)


def test_top_n_orders_best_first_breaks_ties_by_index_and_skips_excluded():
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    exclude = np.array([[False, True, False, False], [False, False, False, False]])
    assert top_n(scores, 2, exclude).tolist() == [[2, 3], [0, 1]]


def test_top_n_pads_with_minus_one_when_there_are_fewer_candidates_than_n():
    scores = np.array([[1.0, 2.0, 3.0]])
    everything_seen = np.array([[True, False, True]])
    assert top_n(scores, 3, everything_seen).tolist() == [[1, -1, -1]]
    assert top_n(scores, 5).tolist() == [[2, 1, 0, -1, -1]]


def test_top_n_agrees_with_a_full_sort_on_random_blocks():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 50))
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    assert (top_n(scores, 7) == expected).all()


def test_recommendation_frame_names_the_movies(catalogue: Catalogue):
    frame = recommendation_frame(catalogue, np.array([0.1, 0.9, 0.5]), 2, None)
    assert frame.to_dict("list") == {"movie_id": [20, 30], "title": ["B", "C"], "score": [0.9, 0.5]}


def test_check_pairs_names_missing_and_non_numeric_columns():
    with pytest.raises(DataError, match="movie_id"):
        check_pairs(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(DataError, match=r"'user_id': 1 row is not an id \(ids are whole numbers\), e.g. 'x'"):
        check_pairs(pd.DataFrame({"user_id": ["x"], "movie_id": [1]}))


def test_check_pairs_refuses_fractional_ids_instead_of_truncating_them():
    with pytest.raises(DataError, match=r"'movie_id': 2 rows are not ids \(ids are whole numbers\), e.g. 1.5"):
        check_pairs(pd.DataFrame({"user_id": [1, 2, 3], "movie_id": [1.5, 2.0, 7.25]}))
    users, movies = check_pairs(pd.DataFrame({"user_id": [1.0, 2], "movie_id": ["3", 4]}))
    assert users.tolist() == [1, 2] and movies.tolist() == [3, 4]
