"""What the served model answers (`mlflow models serve`, through tracking.RecsysPyfunc), without MLflow.

A request is a table with a `user_id` column:

- without `movie_id`: one top-k list per row (`params` k, default and limit in params.yaml `serve`).
  A training user gets the model's `recommend()`, the movies they rated in training left out; a row
  with `ratings` ({movie_id: stars}) or `genres` ({genre: stars}) gets the list of a new user
  described by them (the model's `recommend_for_ratings` / `recommend_for_genres`, as `recsys
  recommend --ratings / --genres`; its training history, if any, is not used); any other user gets
  the cold-start list, marked `cold_start: true`.
- with `movie_id` in every row: the model's `predict()` of each (user, movie) pair, as before.

Ids must be whole numbers, 0 or more (a float only up to 2^53, where float64 stops being exact), and
the request at most `serve.max_rows` rows; anything else is a RequestError naming the column, the count and an example. Scores are rounded:
predicted stars (a rating model) to 2 decimals, ranking scores to 4.

The cold-start list is the model's no-history fallback: its scores for a user without training
ratings. Where those tie (cofi_ranking without movie biases scores such a user 0 everywhere) the movies
with more training ratings come first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ServeParams
from pipeline.data.schema import MOVIE, TITLE, USER
from pipeline.errors import ModelError, RecsysError, describe_examples
from pipeline.models.base import RecommendsForGenres, RecommendsForRatings, TopList, index_of

RATINGS, GENRES = "ratings", "genres"
COLUMNS = (USER, MOVIE, RATINGS, GENRES)
INT64_MAX = np.iinfo(np.int64).max
FLOAT_EXACT = 2**53  # whole numbers up to here are exact in float64 (a JSON number read as a float)
STAR_DECIMALS, SCORE_DECIMALS = 2, 4
REQUEST = "request"
ID_RULE = "a whole number, 0 or more"

# how a new user is described -> (the model protocol that accepts it, what it does, the family whose models can)
NEW_USER_WAYS = {
    RATINGS: (RecommendsForRatings, "fit a new user from ratings", "cofi"),
    GENRES: (RecommendsForGenres, "describe a new user by genres", "content"),
}


class RequestError(RecsysError):
    """A request the served model cannot answer; the scoring server answers it with HTTP 400."""


# ---- a new user: shared with `recsys recommend` --------------------------------------------------


def require_new_user(model: Any, name: str, way: str, *, label: str | None = None, advice: str | None = None) -> None:
    """A ModelError, starting with `label` (default: `way`), unless `model` can list for a new user
    described by `way` (ratings or genres)."""
    protocol, doing, family = NEW_USER_WAYS[way]
    if not isinstance(model, protocol):
        raise ModelError(f"{label or way}: the {name} model cannot {doing}; {advice or f'serve a {family} model'}")


def new_user_list(
    model: Any, name: str, n: int, *, ratings: Mapping[int, float] | None = None, genres: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """The top n (DataFrame[movie_id, title, score]) for a new user given by {movie_id: rating} or {genre: rating}."""
    if ratings is not None:
        require_new_user(model, name, RATINGS)
        return model.recommend_for_ratings(ratings, n=n)
    require_new_user(model, name, GENRES)
    return model.recommend_for_genres(genres or {}, n=n)


def columns_of(frame: pd.DataFrame) -> dict[Any, pd.Series]:
    """The request's columns by name (the first of each name), read in order: looking a label up in
    a fresh request table first builds a hash table of its column names (~0.1 ms of CPU per served
    request; reading the columns in order takes a third less)."""
    out: dict[Any, pd.Series] = {}
    for name, values in frame.items():
        out.setdefault(name, values)
    return out


# ---- request checks ----------------------------------------------------------------------------


def check_columns(frame: pd.DataFrame, serve: ServeParams) -> None:
    if len(frame) == 0:
        raise RequestError(f'{REQUEST}: no rows; send at least one, e.g. {{"dataframe_records": [{{"{USER}": 1}}]}}')
    if len(frame) > serve.max_rows:
        raise RequestError(f"{REQUEST}: {len(frame):,} rows; at most {serve.max_rows:,} per request (serve.max_rows)")
    columns = list(frame.columns)
    unknown = [str(c) for c in columns if c not in COLUMNS]
    if unknown:
        raise RequestError(f"{REQUEST}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are {', '.join(COLUMNS)}")
    if USER not in columns:
        raise RequestError(f"{REQUEST}: missing column '{USER}'; every row names a user, e.g. {{\"{USER}\": 1}}")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _id_of(value: Any) -> int | None:
    """A JSON value as an id: an int 0..2^63 - 1, or a float that is a whole number 0..2^53 (exact in float64)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value) if 0 <= value <= INT64_MAX else None
    if isinstance(value, float | np.floating) and math.isfinite(value) and value.is_integer() and 0 <= value <= FLOAT_EXACT:
        return int(value)
    return None


def id_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, mask of the values that are no id: not a whole number, negative, NaN, text or bool)."""
    kind = values.dtype.kind
    if kind in "iu":
        numbers = values.to_numpy()
        bad = (numbers < 0) | (numbers > INT64_MAX)
    elif kind == "f":  # JSON numbers read as floats: whole numbers up to 2^53 are exact
        numbers = values.to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers)) | (numbers < 0) | (numbers > FLOAT_EXACT)
    else:  # object: a mix of numbers, text, None, ... (a JSON "7" or true is no id)
        found = [_id_of(v) for v in values]
        bad = np.array([i is None for i in found], bool)
        numbers = np.array([0 if i is None else i for i in found], np.int64)
    return np.where(bad, 0, numbers).astype(np.int64), bad


def integer_ids(column: pd.Series) -> np.ndarray:
    """The column as int64 ids, or a RequestError naming how many rows hold no id, with examples."""
    ids, bad = id_values(column)
    if bad.any():
        count = int(bad.sum())
        rows = "1 row is not an id" if count == 1 else f"{count} rows are not ids"
        examples = describe_examples(column[bad].tolist())
        raise RequestError(f"{REQUEST}: column '{column.name}': {rows} ({ID_RULE}), e.g. {examples}")
    return ids


def list_length(params: Mapping[str, Any] | None, serve: ServeParams) -> int:
    """params k (serve.k when absent), or a RequestError unless it is an integer from 1 to serve.max_k."""
    k = (params or {}).get("k", serve.k)
    if not (isinstance(k, int | np.integer) and not isinstance(k, bool | np.bool_) and 1 <= k <= serve.max_k):
        raise RequestError(f"{REQUEST}: params k must be an integer from 1 to {serve.max_k} (serve.max_k); got {k!r}")
    return int(k)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def tastes(column: pd.Series) -> list[dict | None]:
    """Each row's mapping of the `ratings` ({movie_id: stars}) or `genres` ({genre: stars}) column; None where absent.

    JSON keys are text, so movie ids arrive as "318": they must spell ids; every value must be a number.
    """
    key = MOVIE if column.name == RATINGS else "genre"
    out: list[dict | None] = []
    for row, value in enumerate(column.tolist()):
        where = f"{REQUEST}: column '{column.name}': row {row}"
        if _missing(value):
            out.append(None)
            continue
        if not isinstance(value, Mapping) or not value:
            raise RequestError(f"{where} is not a non-empty {{{key}: stars}} mapping (got {value!r})")
        stars = [v for v in value.values() if not _is_number(v)]
        if stars:
            raise RequestError(f"{where}: a rating is not a number, e.g. {describe_examples(stars)}")
        if key == MOVIE:
            ids = [_id_of(_as_number(k)) for k in value]
            if None in ids:
                shown = describe_examples(k for k, i in zip(value, ids, strict=True) if i is None)
                raise RequestError(f"{where}: a key is not a movie id ({ID_RULE}), e.g. {shown}")
            out.append(dict(zip(ids, map(float, value.values()), strict=True)))
        else:
            out.append({str(k): float(v) for k, v in value.items()})
    return out


def _as_number(key: Any) -> Any:
    """A mapping key as the integer it spells ("318" -> 318), else unchanged (and then refused as an id)."""
    if isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            return key
    return key


# ---- the answers -------------------------------------------------------------------------------


def no_history_user(model: Any) -> int:
    """An id below every training user's: score_block gives it the model's fallback for a user without ratings."""
    return min(int(model.seen.user_ids.min(initial=0)), 0) - 1


@dataclass
class Answers:
    """Answers requests for one loaded project model (`name`, e.g. cofi_ranking) under `serve` limits."""

    model: Any
    name: str
    serve: ServeParams = field(default_factory=ServeParams)
    _cold: TopList | None = field(default=None, init=False, repr=False)
    _known: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, init=False, repr=False)

    def precompute(self) -> None:
        """Every training user's top serve.max_k list, once, when there are at most serve.precompute_users
        of them: a request for a known user then slices its list (a top-k is the start of the top max_k,
        ties broken by catalogue order in both) instead of scoring the whole catalogue. Kept as catalogue
        positions and scores (12 bytes a movie), not titles."""
        users, catalogue = self.model.seen.user_ids, self.model.catalogue
        if len(users) <= self.serve.precompute_users:
            for user in users.tolist():
                top = self.model.top_list(user, n=self.serve.max_k, exclude_seen=True)
                self._known[user] = (catalogue.index(top.movie_ids).astype(np.int32), top.scores)

    def known_list(self, user: int, k: int) -> TopList | None:
        """The precomputed top-k of a training user, or None."""
        if user not in self._known:
            return None
        positions, scores = self._known[user]
        positions = positions[:k]
        catalogue = self.model.catalogue
        return TopList(catalogue.movie_ids[positions], catalogue.titles[positions], scores[:k])

    @property
    def decimals(self) -> int:
        return STAR_DECIMALS if self.model.predicts_ratings else SCORE_DECIMALS

    def answer(self, frame: pd.DataFrame, params: Mapping[str, Any] | None = None) -> np.ndarray | list[dict[str, Any]]:
        """Top-k lists (rows without movie_id) or pair scores (movie_id in every row); RequestError for a bad request."""
        check_columns(frame, self.serve)
        columns = columns_of(frame)
        users = integer_ids(columns[USER])
        if MOVIE in columns:
            return self.pair_scores(columns, users)
        k = list_length(params, self.serve)
        ratings = tastes(columns[RATINGS]) if RATINGS in columns else [None] * len(users)
        genres = tastes(columns[GENRES]) if GENRES in columns else [None] * len(users)
        for row, (r, g) in enumerate(zip(ratings, genres, strict=True)):
            if r is not None and g is not None:
                raise RequestError(f"{REQUEST}: row {row} gives both {RATINGS} and {GENRES}; describe a new user by one of them")
        for way, given in ((RATINGS, ratings), (GENRES, genres)):
            if any(g is not None for g in given):
                require_new_user(self.model, self.name, way)
        return [self.user_answer(int(u), k, r, g) for u, r, g in zip(users, ratings, genres, strict=True)]

    def pair_scores(self, columns: Mapping[Any, pd.Series], users: np.ndarray) -> np.ndarray:
        given = [c for c in (RATINGS, GENRES) if c in columns]
        if given:
            raise RequestError(
                f"{REQUEST}: column '{given[0]}' describes a user for a top-k list, '{MOVIE}' asks for pair scores; send one or the other"
            )
        pairs = pd.DataFrame({USER: users, MOVIE: integer_ids(columns[MOVIE])})
        return np.asarray(self.model.predict(pairs), dtype=np.float64)

    def user_answer(self, user: int, k: int, ratings: Mapping[int, float] | None, genres: Mapping[str, float] | None) -> dict[str, Any]:
        """{user_id, cold_start, recommendations: [{movie_id, title, score}, ...] best first}."""
        cold = False
        if ratings is not None or genres is not None:
            table = new_user_list(self.model, self.name, k, ratings=ratings, genres=genres)
            top = TopList(table[MOVIE].to_numpy(np.int64), table[TITLE].to_numpy(), table["score"].to_numpy(np.float64))
        elif (known := self.known_list(user, k)) is not None:
            top = known
        elif index_of(np.array([user], np.int64), self.model.seen.user_ids)[0] >= 0:
            top = self.model.top_list(user, n=k, exclude_seen=True)  # recommend()'s list, without its DataFrame
        else:
            top, cold = self.cold_start_list().head(k), True
        return {USER: user, "cold_start": cold, "recommendations": self.records(top)}

    def cold_start_list(self) -> TopList:
        """The serve.max_k best movies for a user without training ratings (module doc), computed once."""
        if self._cold is None:
            scores = np.asarray(self.model.score_block(np.array([no_history_user(self.model)], np.int64))[0], np.float64)
            support = np.bincount(self.model.seen.indices, minlength=len(scores))
            best = np.lexsort((-support, -scores))[: self.serve.max_k]  # score first, then support; stable
            catalogue = self.model.catalogue
            self._cold = TopList(catalogue.movie_ids[best], catalogue.titles[best], scores[best])
        return self._cold

    def records(self, top: TopList) -> list[dict[str, Any]]:
        scores = np.round(top.scores, self.decimals).tolist()
        return [
            {MOVIE: movie, TITLE: title, "score": score}
            for movie, title, score in zip(top.movie_ids.tolist(), top.titles.tolist(), scores, strict=True)
        ]
