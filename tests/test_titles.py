"""Titles as people type them."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.titles import TitleNotFound, _edits, resolve_title

IDS = np.array([1, 2, 3, 4, 5])
TITLES = np.array(["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)", "Heat (2010)", "Jumanji (1995)"])


@pytest.mark.parametrize(
    ("query", "movie_id"),
    [
        ("Toy Story (1995)", 1),
        ("toy story (1995)", 1),
        ("  TOY   story (1995) ", 1),
        ("Toy Story", 1),
        ("jumanji", 5),
        ("Jumanjii (1995)", 5),
        ("jumanjii", 5),  # a typo without the year
        ("toy stroy", 1),  # two letters swapped, without the year (as in the README's --ratings example)
        ("toy stroy (1995)", 1),
        ("toy story 2 (1990)", 2),  # a wrong digit in the year
    ],
)
def test_titles_match_ignoring_case_spacing_year_and_small_typos(query, movie_id):
    assert resolve_title(query, IDS, TITLES) == movie_id


def test_an_ambiguous_title_lists_every_candidate():
    with pytest.raises(TitleNotFound, match=r"Heat \(1995\).*Heat \(2010\)"):
        resolve_title("heat", IDS, TITLES)


def test_an_unknown_title_suggests_close_ones_or_says_how_titles_look():
    with pytest.raises(TitleNotFound, match="Did you mean: Toy Story"):
        resolve_title("toy", IDS, TITLES)
    with pytest.raises(TitleNotFound, match="no movie titled 'Casablanca'"):
        resolve_title("Casablanca", IDS, TITLES)


def test_a_typo_shared_by_two_movies_or_too_far_from_any_lists_the_candidates():
    with pytest.raises(TitleNotFound, match=r"Did you mean: Heat \(1995\); Heat \(2010\)"):
        resolve_title("heet", IDS, TITLES)  # one edit from both
    with pytest.raises(TitleNotFound, match=r"Did you mean: Toy Story \(1995\)"):
        resolve_title("tyo sotry", IDS, TITLES)  # two edits in 9 characters: more than one per 8


@pytest.mark.parametrize(
    ("a", "b", "edits"),
    [("toy stroy", "toy story", 1), ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("ca", "ac", 1)],
)
def test_edits_count_a_swap_of_neighbours_as_one(a, b, edits):
    assert _edits(a, b) == edits == _edits(b, a)
