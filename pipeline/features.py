"""User and movie features and their scalers, computed from TRAIN ratings only.

The movies table is metadata (titles, years, genres) and is used whole; every number derived
from ratings (counts, averages, scalers, the global mean) comes from the training split, so
nothing of the test split can leak into features, scalers or the models built on them.
Scalers are stored as plain JSON (`scalers_to_dict` / `scalers_from_dict`), never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.data.schema import GENRE_VOCABULARY, GENRES, MOVIE, RATING, USER, YEAR, genre_matrix
from pipeline.errors import DataError, data_error
from pipeline.io import write_json, write_parquet

if TYPE_CHECKING:  # scikit-learn (~1 s to import) is imported where scalers are made, so the stages
    from sklearn.preprocessing import MinMaxScaler, StandardScaler  # that only read features skip it

N_RATINGS = "n_ratings"
AVG_RATING = "avg_rating"
USER_GENRE_COLUMNS = tuple(f"avg_{g}" for g in GENRE_VOCABULARY)
MOVIE_GENRE_COLUMNS = tuple(f"is_{g}" for g in GENRE_VOCABULARY)
# The scaled columns (ids excluded), in file order after the id column.
USER_FEATURE_COLUMNS = (N_RATINGS, AVG_RATING, *USER_GENRE_COLUMNS)
MOVIE_FEATURE_COLUMNS = (YEAR, AVG_RATING, N_RATINGS, *MOVIE_GENRE_COLUMNS)

USERS_FILE = "users.parquet"
MOVIES_FILE = "movies.parquet"
SCALERS_FILE = "scalers.json"
TARGET_RANGE = (-1, 1)


@dataclass(frozen=True)
class Scalers:
    """Fitted on train only: user and movie StandardScalers, the target MinMaxScaler, the train mean rating."""

    user: StandardScaler
    movie: StandardScaler
    target: MinMaxScaler
    global_mean: float


@dataclass(frozen=True)
class Features:
    """The features stage's output: data/features/{users,movies}.parquet and scalers.json."""

    users: pd.DataFrame
    movies: pd.DataFrame
    scalers: Scalers


def _require(frame: pd.DataFrame, columns: tuple[str, ...], file: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise data_error(file, f"missing column(s) {', '.join(missing)} needed by the features")


def _check_train(train: pd.DataFrame, file: str = "train") -> None:
    _require(train, (USER, MOVIE, RATING), file)
    if len(train) == 0:
        raise data_error(file, "has no ratings; features need at least one training rating")


def _movie_index(movies: pd.DataFrame, file: str = "movies") -> pd.Index:
    _require(movies, (MOVIE, GENRES), file)
    index = pd.Index(movies[MOVIE].to_numpy())
    if not index.is_unique:
        dup = index[index.duplicated()]
        raise data_error(file, "are duplicate movie ids", column=MOVIE, count=len(dup), examples=dup)
    return index


def _movie_positions(train: pd.DataFrame, index: pd.Index, file: str = "train") -> np.ndarray:
    positions = index.get_indexer(train[MOVIE].to_numpy())
    unknown = positions < 0
    if unknown.any():
        bad = train.loc[unknown, MOVIE]
        raise data_error(file, "rate movies absent from the movies table", column=MOVIE, count=len(bad), examples=bad)
    return positions


def global_mean(train: pd.DataFrame) -> float:
    """The mean training rating (fallback for users and movies without training ratings)."""
    _check_train(train)
    return float(train[RATING].to_numpy(dtype=np.float64).mean())


def user_features(
    train: pd.DataFrame, movies: pd.DataFrame, genre_prior: float, *, train_file: str = "train", movies_file: str = "movies"
) -> pd.DataFrame:
    """One row per train user, sorted by user_id: user_id, n_ratings, avg_rating, avg_<Genre>...

    avg_<Genre> = (sum of the user's ratings of that genre + genre_prior * avg_rating)
                  / (number of those ratings + genre_prior); avg_rating for a genre never rated.
    A movie with several genres counts toward each. O(ratings): a sparse users x movies matrix
    times the movies x genres one-hot.
    """
    _check_train(train, train_file)
    index = _movie_index(movies, movies_file)
    movie_pos = _movie_positions(train, index, train_file)
    user_ids, user_pos = np.unique(train[USER].to_numpy(), return_inverse=True)
    ratings = train[RATING].to_numpy(dtype=np.float64)
    shape = (len(user_ids), len(index))
    rated = sparse.csr_matrix((ratings, (user_pos, movie_pos)), shape=shape)
    seen = sparse.csr_matrix((np.ones_like(ratings), (user_pos, movie_pos)), shape=shape)
    genres = sparse.csr_matrix(genre_matrix(movies[GENRES]).astype(np.float64))
    genre_sum = (rated @ genres).toarray()
    genre_count = (seen @ genres).toarray()
    n = np.bincount(user_pos, minlength=len(user_ids))
    mean = np.bincount(user_pos, weights=ratings, minlength=len(user_ids)) / n
    denominator = genre_count + genre_prior
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = (genre_sum + genre_prior * mean[:, None]) / denominator
    genre_avg = np.where(denominator > 0, shrunk, mean[:, None])
    out = pd.DataFrame({USER: user_ids.astype(np.int64), N_RATINGS: n.astype(np.int64), AVG_RATING: mean})
    return pd.concat([out, pd.DataFrame(genre_avg, columns=list(USER_GENRE_COLUMNS))], axis=1)


def user_feature_row(ratings: pd.DataFrame, movies: pd.DataFrame, genre_prior: float, user_id: int = -1) -> pd.DataFrame:
    """The one-row user features of an ad-hoc set of ratings (movie_id, rating), e.g. a new user's.

    Same formula as `user_features`; `user_id` labels the row. No ratings: use `no_history_user`.
    """
    _require(ratings, (MOVIE, RATING), "ratings")
    if len(ratings) == 0:
        raise data_error("ratings", "given: none; use no_history_user for a user without ratings")
    frame = pd.DataFrame({USER: np.int64(user_id), MOVIE: ratings[MOVIE].to_numpy(), RATING: ratings[RATING].to_numpy()})
    return user_features(frame, movies, genre_prior)


def no_history_user(train: pd.DataFrame, user_id: int = -1) -> pd.DataFrame:
    """One feature row for an unknown user: n_ratings 0, avg_rating and every genre average = train mean."""
    mean = global_mean(train)
    row: dict[str, list[np.int64 | float]] = {USER: [np.int64(user_id)], N_RATINGS: [np.int64(0)]}
    row.update({column: [mean] for column in (AVG_RATING, *USER_GENRE_COLUMNS)})
    return pd.DataFrame(row).astype({USER: "int64", N_RATINGS: "int64"})


def movie_features(train: pd.DataFrame, movies: pd.DataFrame, *, train_file: str = "train", movies_file: str = "movies") -> pd.DataFrame:
    """One row per movie of the catalogue, sorted by movie_id: movie_id, year, avg_rating, n_ratings, is_<Genre>...

    year: the movie's year, or the catalogue's median year (rounded half up) when missing; 0 for
    every movie when no movie has a year (a constant: the scaler turns it into 0, the year then
    carries no information).
    avg_rating / n_ratings: over train ratings; a movie without any gets the train mean and 0.
    is_<Genre>: 0/1 flags (int8).
    """
    _check_train(train, train_file)
    index = _movie_index(movies, movies_file)
    _require(movies, (YEAR,), movies_file)
    movie_pos = _movie_positions(train, index, train_file)
    ratings = train[RATING].to_numpy(dtype=np.float64)
    n = np.bincount(movie_pos, minlength=len(index))
    total = np.bincount(movie_pos, weights=ratings, minlength=len(index))
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(n > 0, total / n, ratings.mean())
    years = pd.to_numeric(movies[YEAR], errors="coerce").astype("Float64")
    fill = np.floor(float(years.median()) + 0.5) if years.notna().any() else 0.0
    out = pd.DataFrame(
        {
            MOVIE: index.to_numpy().astype(np.int64),
            YEAR: years.fillna(fill).to_numpy(dtype=np.float64).astype(np.int64),
            AVG_RATING: avg,
            N_RATINGS: n.astype(np.int64),
        }
    )
    flags = pd.DataFrame(genre_matrix(movies[GENRES]).astype(np.int8), columns=list(MOVIE_GENRE_COLUMNS))
    out = pd.concat([out, flags], axis=1)
    return out.sort_values(MOVIE, kind="stable").reset_index(drop=True)


def fit_scalers(train: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame) -> Scalers:
    """Fit the user scaler on `users` (train users), the movie scaler on movies with train ratings,
    the target scaler to [-1, 1] on train ratings."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    _check_train(train)
    user = StandardScaler().fit(users[list(USER_FEATURE_COLUMNS)])
    rated = movies.loc[movies[N_RATINGS] > 0, list(MOVIE_FEATURE_COLUMNS)]
    if len(rated) == 0:
        raise data_error("movies features", "have no movie with a training rating; cannot fit the movie scaler")
    movie = StandardScaler().fit(rated)
    target = MinMaxScaler(feature_range=TARGET_RANGE).fit(train[[RATING]].to_numpy(dtype=np.float64))
    return Scalers(user=user, movie=movie, target=target, global_mean=global_mean(train))


def build_features(
    train: pd.DataFrame, movies: pd.DataFrame, genre_prior: float, *, train_file: str = "train", movies_file: str = "movies"
) -> Features:
    """Everything the features stage writes, from train ratings and the movies table (files name errors)."""
    files = {"train_file": train_file, "movies_file": movies_file}
    users = user_features(train, movies, genre_prior, **files)
    movie_table = movie_features(train, movies, **files)
    return Features(users=users, movies=movie_table, scalers=fit_scalers(train, users, movie_table))


def _standard_to_dict(scaler: StandardScaler) -> dict[str, Any]:
    return {
        "columns": [str(c) for c in scaler.feature_names_in_],
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "var": scaler.var_.tolist(),
        "n_samples_seen": int(scaler.n_samples_seen_),
    }


def _standard_from_dict(state: dict[str, Any]) -> StandardScaler:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.feature_names_in_ = np.asarray(state["columns"], dtype=object)
    scaler.n_features_in_ = len(state["columns"])
    scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
    scaler.var_ = np.asarray(state["var"], dtype=np.float64)
    scaler.n_samples_seen_ = np.int64(state["n_samples_seen"])
    if not len(scaler.mean_) == len(scaler.scale_) == len(scaler.var_) == scaler.n_features_in_:
        raise ValueError("columns, mean, scale and var differ in length")
    return scaler


def scalers_to_dict(scalers: Scalers) -> dict[str, Any]:
    """The JSON form of scalers.json (plain lists and floats; floats round-trip exactly)."""
    target = scalers.target
    return {
        "user": _standard_to_dict(scalers.user),
        "movie": _standard_to_dict(scalers.movie),
        "target": {
            "feature_range": list(target.feature_range),
            "data_min": float(target.data_min_[0]),
            "data_max": float(target.data_max_[0]),
            "n_samples_seen": int(target.n_samples_seen_),
        },
        "global_mean": float(scalers.global_mean),
    }


def scalers_from_dict(state: dict[str, Any], file: str = SCALERS_FILE) -> Scalers:
    """Rebuild fitted sklearn scalers from `scalers_to_dict` output; `transform` gives identical results."""
    from sklearn.preprocessing import MinMaxScaler

    try:
        spec = state["target"]
        feature_range = tuple(spec["feature_range"])
        # Refitting on [min, max] recomputes data_range_, scale_ and min_ with sklearn's own formulas.
        target = MinMaxScaler(feature_range=feature_range).fit(np.array([[spec["data_min"]], [spec["data_max"]]], dtype=np.float64))
        target.n_samples_seen_ = int(spec.get("n_samples_seen", 2))
        return Scalers(
            user=_standard_from_dict(state["user"]),
            movie=_standard_from_dict(state["movie"]),
            target=target,
            global_mean=float(state["global_mean"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{file}: not a valid scalers file ({type(exc).__name__}: {exc})") from None


def save_features(features: Features, folder: str | Path) -> None:
    """Write users.parquet, movies.parquet and scalers.json into `folder` (created if missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / USERS_FILE, features.users)
    write_parquet(folder / MOVIES_FILE, features.movies)
    write_json(folder / SCALERS_FILE, scalers_to_dict(features.scalers))


def load_features(folder: str | Path) -> Features:
    """Read what `save_features` wrote; DataError naming the first missing file."""
    folder = Path(folder)
    for name in (USERS_FILE, MOVIES_FILE, SCALERS_FILE):
        if not (folder / name).is_file():
            raise data_error(str(folder / name), "not found; run the features stage first (recsys features)")
    try:
        state = json.loads((folder / SCALERS_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{folder / SCALERS_FILE}: not valid JSON ({exc})") from None
    return Features(
        users=pd.read_parquet(folder / USERS_FILE),
        movies=pd.read_parquet(folder / MOVIES_FILE),
        scalers=scalers_from_dict(state, str(folder / SCALERS_FILE)),
    )
