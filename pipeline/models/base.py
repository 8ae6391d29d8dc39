"""The model contract every model follows (`Recommender`), and the pieces every model shares.

One lifecycle: `Model.fit(TrainingData, params)` (a classmethod) builds a trained model from the
data it is handed; then
- predict(DataFrame[user_id, movie_id]) -> float array in stars, clipped to the rating scale;
  unknown users/movies get a documented fallback, never an exception (a model with
  `predicts_ratings` False, which only ranks, refuses with a ModelError);
- score_block(user_ids) -> (users x catalogue) scores, what recommend() and the ranking metrics rank;
- recommend(user_id, n=10, exclude_seen=True) -> DataFrame[movie_id, title, score], the frame of
  top_list(user_id, n, exclude_seen) -> TopList (the same list as arrays, what the server answers from);
- with_ranking(ranking) -> a copy that ranks by support-adjusted scores (pipeline/models/ranking.py);
- save(dir) / Model.load(dir) without pickle.

`Catalogue` (movie ids and titles) and `SeenItems` (each user's training movies, CSR) are what a
model needs besides its parameters to recommend; `top_n` ranks score blocks without Python loops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from pipeline.data.schema import MOVIE, TITLE, USER, RatingScale
from pipeline.errors import DataError, ModelError
from pipeline.io import read_json

if TYPE_CHECKING:
    from pipeline.features import Features

RECOMMEND_COLUMNS = (MOVIE, TITLE, "score")


@dataclass(frozen=True)
class TrainingData:
    """What a model is fitted on, handed in by its caller (a stage reads it through its Layout)."""

    ratings: pd.DataFrame  # the training ratings: user_id, movie_id, rating
    movies: pd.DataFrame  # the catalogue: movie_id, title (and the rest of the movies contract)
    scale: RatingScale  # predictions are clipped to scale.bounds
    features: Features | None = None  # the features stage's tables and scalers, for models built on them
    source: str = "train ratings"  # how error messages name the ratings


@runtime_checkable
class Recommender(Protocol):
    """What every model has (module docstring); tests/models/contract.py checks each model against it.

    `fit` may take more options after `params`, keyword-only and with defaults (e.g. a progress bar).
    """

    # Read-only properties, so that a ClassVar (predicts_ratings) or a frozen dataclass field satisfies them.
    @property
    def predicts_ratings(self) -> bool: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def seen(self) -> SeenItems: ...

    @classmethod
    def fit(cls, data: TrainingData, params: Any) -> Self: ...

    def predict(self, pairs: pd.DataFrame) -> np.ndarray: ...

    def score_block(self, user_ids: np.ndarray) -> np.ndarray: ...

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame: ...

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList: ...

    def with_ranking(self, ranking: Any) -> Self: ...

    def save(self, directory: str | Path) -> None: ...

    @classmethod
    def load(cls, directory: str | Path) -> Self: ...


@dataclass(frozen=True)
class ParameterCounts:
    """A trained model's learned numbers by what they belong to: a set per training user, a set per
    movie, or shared by every user and movie (a network's weights). `parts` names them with their sizes."""

    per_user: int
    per_movie: int
    shared: int
    parts: str

    @property
    def total(self) -> int:
        return self.per_user + self.per_movie + self.shared


class ParameterTotal:
    """`parameter_count`, the total of a trained model's `parameters()` (mixed into the trained models)."""

    def parameters(self) -> ParameterCounts:
        raise NotImplementedError

    @property
    def parameter_count(self) -> int:
        return self.parameters().total


@runtime_checkable
class CountsParameters(Protocol):
    """A model that splits its learned numbers into per-user, per-movie and shared ones (the trained models)."""

    def parameters(self) -> ParameterCounts: ...


@runtime_checkable
class EmbedsMovies(Protocol):
    """A model that represents each movie by a learned vector (cofi's x_i, content's v_m)."""

    def embedded_movies(self) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, one vector per movie as the rows of a matrix)."""
        ...


@runtime_checkable
class RecommendsForRatings(Protocol):
    """A model that recommends for a new user described by {movie_id: rating} (cofi)."""

    def recommend_for_ratings(self, ratings: Mapping[int, float], n: int = 10) -> pd.DataFrame: ...


@runtime_checkable
class RecommendsForGenres(Protocol):
    """A model that recommends for a new user described by {genre: rating} (content)."""

    def recommend_for_genres(self, prefs: Mapping[str, float], n: int = 10) -> pd.DataFrame: ...


def check_pairs(pairs: pd.DataFrame, what: str = "predict input") -> tuple[np.ndarray, np.ndarray]:
    """Return (user_ids, movie_ids) as int64 arrays, or raise a DataError naming the problem."""
    missing = [c for c in (USER, MOVIE) if c not in pairs.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)}; expected {USER}, {MOVIE}")
    users = pd.to_numeric(pairs[USER], errors="coerce")
    movies = pd.to_numeric(pairs[MOVIE], errors="coerce")
    for name, col in ((USER, users), (MOVIE, movies)):
        not_whole = col.isna() | ~np.isfinite(col.astype(np.float64)) | (col.astype(np.float64) % 1 != 0)  # 1.5 is no id, not 1
        if not_whole.any():
            bad = pairs.loc[not_whole, name]
            rows = "1 row is not an id" if len(bad) == 1 else f"{len(bad)} rows are not ids"
            raise DataError(f"{what}: column '{name}': {rows} (ids are whole numbers), e.g. {bad.tolist()[0]!r}")
    return users.to_numpy(np.int64), movies.to_numpy(np.int64)


def index_of(ids: np.ndarray, known_sorted: np.ndarray) -> np.ndarray:
    """Position of each id in the sorted array `known_sorted`, or -1 where unknown (vectorized)."""
    if len(known_sorted) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.searchsorted(known_sorted, ids)
    pos_clipped = np.minimum(pos, len(known_sorted) - 1)
    found = known_sorted[pos_clipped] == ids
    return np.where(found, pos_clipped, -1).astype(np.int64)


@dataclass(frozen=True)
class Catalogue:
    """The movies a model can recommend, sorted by movie_id."""

    movie_ids: np.ndarray  # int64, sorted ascending
    titles: np.ndarray  # str

    @classmethod
    def from_movies(cls, movies: pd.DataFrame) -> Catalogue:
        ordered = movies.sort_values(MOVIE)
        return cls(ordered[MOVIE].to_numpy(np.int64), ordered[TITLE].astype(str).to_numpy(dtype=str))

    def __len__(self) -> int:
        return len(self.movie_ids)

    def index(self, movie_ids: np.ndarray) -> np.ndarray:
        return index_of(np.asarray(movie_ids, dtype=np.int64), self.movie_ids)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"catalogue_movie_ids": self.movie_ids, "catalogue_titles": self.titles}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Catalogue:
        return cls(np.asarray(arrays["catalogue_movie_ids"], np.int64), np.asarray(arrays["catalogue_titles"], dtype=str))


@dataclass(frozen=True)
class SeenItems:
    """Each known user's training movies as CSR rows over catalogue positions."""

    user_ids: np.ndarray  # int64, sorted ascending
    indptr: np.ndarray  # int64, len(user_ids) + 1
    indices: np.ndarray  # int64 catalogue positions

    @classmethod
    def from_ratings(cls, ratings: pd.DataFrame, catalogue: Catalogue) -> SeenItems:
        user_ids, user_pos = np.unique(ratings[USER].to_numpy(np.int64), return_inverse=True)
        movie_pos = catalogue.index(ratings[MOVIE].to_numpy(np.int64))
        if (movie_pos < 0).any():
            raise DataError(f"ratings: column '{MOVIE}': {(movie_pos < 0).sum()} rows rate movies missing from the catalogue")
        order = np.lexsort((movie_pos, user_pos))
        counts = np.bincount(user_pos, minlength=len(user_ids))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(user_ids, indptr, movie_pos[order].astype(np.int64))

    def of(self, user_id: int) -> np.ndarray:
        """Catalogue positions the user rated in train (empty for an unknown user)."""
        pos = index_of(np.array([user_id], dtype=np.int64), self.user_ids)[0]
        if pos < 0:
            return np.empty(0, dtype=np.int64)
        return self.indices[self.indptr[pos] : self.indptr[pos + 1]]

    def mask(self, user_ids: np.ndarray, n_movies: int) -> np.ndarray:
        """Boolean (len(user_ids) x n_movies) block, True where the user rated the movie in train."""
        block = np.zeros((len(user_ids), n_movies), dtype=bool)
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        known = np.flatnonzero(pos >= 0)
        starts, ends = self.indptr[pos[known]], self.indptr[pos[known] + 1]
        lengths = ends - starts
        rows = np.repeat(known, lengths)
        block[rows, self.indices[concatenated_ranges(starts, lengths)]] = True
        return block

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"seen_user_ids": self.user_ids, "seen_indptr": self.indptr, "seen_indices": self.indices}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SeenItems:
        return cls(
            np.asarray(arrays["seen_user_ids"], np.int64),
            np.asarray(arrays["seen_indptr"], np.int64),
            np.asarray(arrays["seen_indices"], np.int64),
        )


def concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """np.concatenate([arange(s, s + n) for s, n in zip(starts, lengths)]) without the loop."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    shifts = np.repeat(np.asarray(starts, np.int64) - np.cumsum(lengths) + lengths, lengths)
    return shifts + np.arange(total, dtype=np.int64)


def top_n(scores: np.ndarray, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the n best scores of each row, best first (ties: lower index first).

    `scores` is (users x movies); `exclude` a same-shape mask of positions never returned. Rows
    with fewer than n candidates are padded with -1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return top_n(scores[None, :], n, None if exclude is None else exclude[None, :])[0]
    masked = np.where(exclude, -np.inf, scores) if exclude is not None else scores
    n_cols = masked.shape[1]
    k = min(n, n_cols)
    if k == 0:
        return np.full((masked.shape[0], n), -1, dtype=np.int64)
    # argpartition is O(movies) but picks arbitrary members of a tie at the k-th score; rows where
    # such a tie spills over keep every score above the k-th and the lowest-index ones equal to it.
    # A stable sort of the k survivors then keeps ties in index order.
    if k < n_cols:
        part = np.argpartition(masked, n_cols - k, axis=1)[:, n_cols - k :]
        kth = np.take_along_axis(masked, part[:, :1], axis=1)
        spilled = np.flatnonzero((masked >= kth).sum(axis=1) > k)
        if len(spilled):
            rows, kth_rows = masked[spilled], kth[spilled]
            above, at_kth = rows > kth_rows, rows == kth_rows
            keep = above | (at_kth & (np.cumsum(at_kth, axis=1) <= k - above.sum(axis=1, keepdims=True)))
            part[spilled] = np.nonzero(keep)[1].reshape(len(spilled), k)
        part_sorted = np.sort(part, axis=1)
    else:
        part_sorted = np.tile(np.arange(n_cols), (masked.shape[0], 1))
    order = np.argsort(-np.take_along_axis(masked, part_sorted, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(part_sorted, order, axis=1)
    best = np.where(np.isneginf(np.take_along_axis(masked, best, axis=1)), -1, best)
    if k < n:
        best = np.pad(best, ((0, 0), (0, n - k)), constant_values=-1)
    return best.astype(np.int64)


def pair_scores(
    score_block: Callable[[np.ndarray], np.ndarray], catalogue: Catalogue, users: np.ndarray, movies: np.ndarray, block_cells: int = 1 << 21
) -> np.ndarray:
    """score_block's value at each (user, movie) pair, a block of distinct users at a time; 0 for a
    movie outside the catalogue. For ranking models whose predict() returns scores."""
    out = np.zeros(len(users))
    columns = catalogue.index(movies)
    known = np.flatnonzero(columns >= 0)
    distinct, row = np.unique(users[known], return_inverse=True)
    step = max(1, block_cells // max(len(catalogue), 1))
    for start in range(0, len(distinct), step):
        block = score_block(distinct[start : start + step])
        inside = (row >= start) & (row < start + step)
        out[known[inside]] = block[row[inside] - start, columns[known[inside]]]
    return out


@dataclass(frozen=True)
class TopList:
    """One user's top-n list as arrays, best first; `frame()` is recommend()'s DataFrame of it.

    A served request reads the arrays directly: building and reading back a three-column DataFrame
    cost more than scoring the whole catalogue did.
    """

    movie_ids: np.ndarray  # int64
    titles: np.ndarray  # str
    scores: np.ndarray  # float64

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({MOVIE: self.movie_ids, TITLE: self.titles, "score": self.scores})

    def head(self, n: int) -> TopList:
        return TopList(self.movie_ids[:n], self.titles[:n], self.scores[:n])


def rank_catalogue(catalogue: Catalogue, scores: np.ndarray, n: int, exclude: np.ndarray | None) -> TopList:
    """The top_list() answer for one user from a score per catalogue movie."""
    picks = top_n(scores, n, exclude)
    picks = picks[picks >= 0]
    return TopList(catalogue.movie_ids[picks], catalogue.titles[picks], np.asarray(scores, np.float64)[picks])


def recommendation_frame(catalogue: Catalogue, scores: np.ndarray, n: int, exclude: np.ndarray | None) -> pd.DataFrame:
    """The recommend() answer for one user from a score per catalogue movie."""
    return rank_catalogue(catalogue, scores, n, exclude).frame()


def seen_exclusion(seen: SeenItems, user_id: int, n_movies: int, exclude_seen: bool) -> np.ndarray | None:
    if not exclude_seen:
        return None
    mask = np.zeros(n_movies, dtype=bool)
    mask[seen.of(user_id)] = True
    return mask


def save_arrays(directory: str | Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez into directory/name (no pickle: object arrays are refused)."""
    path = Path(directory) / name
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"{key}: object arrays would need pickle; convert to str or numbers first")
    # numpy's savez stub: mypy cannot tell that **arrays holds no allow_pickle (bool) key; every value is an array
    np.savez(path, **arrays)  # type: ignore[arg-type]


def model_file(directory: str | Path, name: str) -> Path:
    """directory/name, or a ModelError naming it when the saved model lacks that file."""
    path = Path(directory) / name
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (train the model first, e.g. `dvc repro`)")
    return path


def load_arrays(directory: str | Path, name: str) -> dict[str, np.ndarray]:
    with np.load(model_file(directory, name), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def read_model_meta(directory: str | Path, name: str) -> dict:
    """The JSON description saved beside a model's arrays, or a ModelError naming the missing file."""
    return read_json(model_file(directory, name))
