"""Find a movie by title the way people type it: case-insensitively, approximately, and with
the candidates listed when the answer is ambiguous or missing."""

from __future__ import annotations

import difflib
import re

import numpy as np

from pipeline.errors import RecsysError

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


class TitleNotFound(RecsysError):
    """No movie, or more than one, matches a title typed by the user."""


def _normalize(title: str) -> str:
    return " ".join(title.casefold().split())


def _without_year(title: str) -> str:
    return _YEAR.sub("", title)


def resolve_title(query: str, movie_ids: np.ndarray, titles: np.ndarray, max_candidates: int = 8) -> int:
    """The movie_id whose title matches `query`.

    Order of tries: exact title ignoring case and spacing; then the title without its "(year)"
    when exactly one movie has it; then close matches (difflib). Several equally good answers
    or none raise TitleNotFound listing the candidates.
    """
    wanted = _normalize(query)
    normalized = np.array([_normalize(t) for t in titles], dtype=object)
    exact = np.flatnonzero(normalized == wanted)
    if len(exact) == 1:
        return int(movie_ids[exact[0]])
    if len(exact) == 0:
        bare = np.array([_without_year(t) for t in normalized], dtype=object)
        exact = np.flatnonzero(bare == _without_year(wanted))
        if len(exact) == 1:
            return int(movie_ids[exact[0]])
    if len(exact) > 1:
        listed = "; ".join(str(titles[i]) + f" (id {movie_ids[i]})" for i in exact[:max_candidates])
        raise TitleNotFound(f"'{query}' matches {len(exact)} movies: {listed}. Add the year or use the id.")
    close = difflib.get_close_matches(wanted, list(normalized), n=max_candidates, cutoff=0.6)
    if close and _is_clear_winner(wanted, close):
        return int(movie_ids[np.flatnonzero(normalized == close[0])[0]])
    contains = [t for t in normalized if wanted and _without_year(wanted) in t][:max_candidates]
    candidates = list(dict.fromkeys(close + contains))[:max_candidates]
    if not candidates:
        raise TitleNotFound(f"no movie titled '{query}' (titles look like 'Toy Story (1995)')")
    shown = "; ".join(str(titles[np.flatnonzero(normalized == c)[0]]) for c in candidates)
    raise TitleNotFound(f"no movie titled exactly '{query}'. Did you mean: {shown}?")


def _is_clear_winner(wanted: str, close: list[str]) -> bool:
    """A typo: the best match is very close and clearly closer than the runner-up."""
    ratios = [difflib.SequenceMatcher(None, wanted, c).ratio() for c in close[:2]]
    return ratios[0] >= 0.9 and (len(ratios) == 1 or ratios[0] - ratios[1] >= 0.05)
