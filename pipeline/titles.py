"""Find a movie by title the way people type it: case-insensitively, approximately, and with
the candidates listed when the answer is ambiguous or missing."""

from __future__ import annotations

import difflib
import re

import numpy as np

from pipeline.errors import RecsysError

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
TYPO_LENGTH = 8  # typed characters per edit a typo may need


class TitleNotFound(RecsysError):
    """No movie, or more than one, matches a title typed by the user."""


def _normalize(title: str) -> str:
    return " ".join(title.casefold().split())


def _without_year(title: str) -> str:
    return _YEAR.sub("", title)


def resolve_title(query: str, movie_ids: np.ndarray, titles: np.ndarray, max_candidates: int = 8) -> int:
    """The movie_id whose title matches `query`.

    Order of tries: exact title ignoring case and spacing; then the title without its "(year)"
    when exactly one movie has it; then a typo: the one movie whose title, with or without its
    "(year)", is the fewest edits away (a swap of two neighbouring letters is one edit), if that
    is at most one edit per TYPO_LENGTH typed characters. Several equally good answers or none
    raise TitleNotFound listing the candidates.
    """
    wanted = _normalize(query)
    full = np.array([_normalize(t) for t in titles], dtype=object)
    bare = np.array([_without_year(t) for t in full], dtype=object)
    exact = np.flatnonzero(full == wanted)
    if len(exact) == 0:
        exact = np.flatnonzero(bare == _without_year(wanted))
    if len(exact) == 1:
        return int(movie_ids[exact[0]])
    if len(exact) > 1:
        listed = "; ".join(str(titles[i]) + f" (id {movie_ids[i]})" for i in exact[:max_candidates])
        raise TitleNotFound(f"'{query}' matches {len(exact)} movies: {listed}. Add the year or use the id.")
    close = _close(wanted, (full, bare), max_candidates)
    if close and close[0][0] <= max(1, len(wanted) // TYPO_LENGTH) and (len(close) == 1 or close[1][0] > close[0][0]):
        return int(movie_ids[close[0][1]])
    contains = [i for i, t in enumerate(full) if wanted and _without_year(wanted) in t][:max_candidates]
    candidates = list(dict.fromkeys([i for _, i in close] + contains))[:max_candidates]
    if not candidates:
        raise TitleNotFound(f"no movie titled '{query}' (titles look like 'Toy Story (1995)')")
    shown = "; ".join(str(titles[i]) for i in candidates)
    raise TitleNotFound(f"no movie titled exactly '{query}'. Did you mean: {shown}?")


def _close(wanted: str, forms: tuple[np.ndarray, ...], n: int) -> list[tuple[int, int]]:
    """(edits, position) of the movies that difflib finds close to `wanted` in any form of their
    title (with, without the year), each at its fewest edits, nearest first."""
    edits: dict[int, int] = {}
    for form in forms:
        for match in difflib.get_close_matches(wanted, list(dict.fromkeys(form)), n=n, cutoff=0.6):
            distance = _edits(wanted, match)
            for position in np.flatnonzero(form == match).tolist():
                edits[position] = min(distance, edits.get(position, distance))
    return sorted((distance, position) for position, distance in edits.items())


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning `a` into `b` (optimal
    string alignment distance)."""
    before, previous = [0] * (len(b) + 1), list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[-1]
