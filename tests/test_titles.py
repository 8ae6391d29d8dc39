"""Titles as people type them."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.titles import TitleNotFound, resolve_title

IDS = np.array([1, 2, 3, 4, 5])
TITLES = np.array(["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)", "Heat (2010)", "Jumanji (1995)"])


@pytest.mark.parametrize(
    ("query", "movie_id"),
    [("Toy Story (1995)", 1), ("toy story (1995)", 1), ("  TOY   story (1995) ", 1), ("Toy Story", 1), ("jumanji", 5), ("Jumanjii (1995)", 5)],
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
