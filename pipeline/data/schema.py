"""The data contract every stage after ingest relies on (column names and dtypes: README, "Data contract").

Column names live here and nowhere else; `conform_ratings` / `conform_movies` check a frame
against the contract and cast it to the exact dtypes, raising one clear DataError otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import data_error

USER = "user_id"
MOVIE = "movie_id"
RATING = "rating"
TIMESTAMP = "timestamp"
TITLE = "title"
YEAR = "year"
GENRES = "genres"

RATINGS_COLUMNS = (USER, MOVIE, RATING, TIMESTAMP)
MOVIES_COLUMNS = (MOVIE, TITLE, YEAR, GENRES)
RATINGS_DTYPES = {USER: "int64", MOVIE: "int64", RATING: "float64", TIMESTAMP: "int64"}
MOVIES_DTYPES = {MOVIE: "int64", TITLE: "object", YEAR: "Int64", GENRES: "object"}

GENRE_SEPARATOR = "|"

# The MovieLens genre vocabulary (ml-latest / ml-25m / ml-32m spelling). Older releases' spellings
# are mapped onto it by the readers ("Children's" -> "Children"); "(no genres listed)" and
# ml-100k's "unknown" become the empty string.
GENRE_VOCABULARY = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


SCALE_KEYS = ("rating_min", "rating_max", "rating_step")  # how dataset.json records a RatingScale


@dataclass(frozen=True)
class RatingScale:
    """The ratings a dataset can hold: min, min + step, ..., max (written by ingest into dataset.json)."""

    min: float
    max: float
    step: float

    @classmethod
    def from_meta(cls, meta: Any, file: str = "dataset.json") -> RatingScale:
        """The scale recorded in dataset.json's mapping; a missing or impossible value is a DataError."""
        try:
            scale = cls(*(float(meta[key]) for key in SCALE_KEYS))
        except (KeyError, TypeError, ValueError):
            raise data_error(file, f"needs numeric {', '.join(SCALE_KEYS)} (got {meta!r:.200})") from None
        steps = (scale.max - scale.min) / scale.step if scale.step > 0 else -1.0
        if not (scale.min < scale.max and steps > 0 and abs(steps - round(steps)) < 1e-6):
            raise data_error(file, f"impossible rating scale {scale}")
        return scale

    def to_meta(self) -> dict[str, float]:
        """The dataset.json entries of this scale."""
        return dict(zip(SCALE_KEYS, (float(self.min), float(self.max), float(self.step)), strict=True))

    @property
    def bounds(self) -> tuple[float, float]:
        """(min, max): what predictions are clipped to."""
        return float(self.min), float(self.max)

    def values(self) -> list[float]:
        """Every allowed rating: min, min + step, ..., max (e.g. 0.5, 1.0, ..., 5.0)."""
        n = round((self.max - self.min) / self.step)
        return [float(v) for v in np.round(self.min + self.step * np.arange(n + 1), 6)]


def _check_columns(frame: pd.DataFrame, expected: tuple[str, ...], file: str) -> None:
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise data_error(file, f"missing column(s) {', '.join(missing)}; expected {', '.join(expected)}")
    extra = [c for c in frame.columns if c not in expected]
    if extra:
        raise data_error(file, f"unexpected column(s) {', '.join(map(str, extra))}; expected {', '.join(expected)}")


def _to_int64(series: pd.Series, file: str) -> pd.Series:
    column = str(series.name)
    if series.isna().any():
        bad = series[series.isna()]
        raise data_error(file, "are missing (NaN)", column=column, count=len(bad), examples=bad.index[:3].map(lambda i: f"row {i}"))
    numeric = pd.to_numeric(series, errors="coerce")
    bad_mask = numeric.isna() | (numeric != np.floor(numeric))
    if bad_mask.any():
        bad = series[bad_mask]
        raise data_error(file, "are not whole numbers", column=column, count=len(bad), examples=bad)
    return numeric.astype("int64")


def conform_ratings(frame: pd.DataFrame, file: str = "ratings") -> pd.DataFrame:
    """Return `frame` as the ratings contract: user_id, movie_id, timestamp int64; rating float64."""
    _check_columns(frame, RATINGS_COLUMNS, file)
    out = pd.DataFrame(
        {
            USER: _to_int64(frame[USER], file),
            MOVIE: _to_int64(frame[MOVIE], file),
            RATING: _to_float64(frame[RATING], file),
            TIMESTAMP: _to_int64(frame[TIMESTAMP], file),
        }
    )
    return out.reset_index(drop=True)


def _to_float64(series: pd.Series, file: str) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    bad_mask = numeric.isna() | ~np.isfinite(numeric.astype("float64"))
    if bad_mask.any():
        bad = series[bad_mask]
        raise data_error(file, "are not finite numbers", column=str(series.name), count=len(bad), examples=bad)
    return numeric.astype("float64")


def conform_movies(frame: pd.DataFrame, file: str = "movies") -> pd.DataFrame:
    """Return `frame` as the movies contract: movie_id int64, title str, year Int64, genres str."""
    _check_columns(frame, MOVIES_COLUMNS, file)
    year = pd.to_numeric(frame[YEAR], errors="coerce")
    bad_year = frame[YEAR].notna() & (year.isna() | (year != np.floor(year)))
    if bad_year.any():
        bad = frame.loc[bad_year, YEAR]
        raise data_error(file, "are not whole years", column=YEAR, count=len(bad), examples=bad)
    out = pd.DataFrame(
        {
            MOVIE: _to_int64(frame[MOVIE], file),
            TITLE: frame[TITLE].astype("object"),
            YEAR: year.round().astype("Int64"),
            GENRES: frame[GENRES].fillna("").astype("object"),
        }
    )
    return out.reset_index(drop=True)


def split_genres(genres: pd.Series) -> pd.Series:
    """'A|B' -> ['A', 'B']; '' -> []."""
    return genres.fillna("").map(lambda g: [x for x in g.split(GENRE_SEPARATOR) if x])


def genre_matrix(genres: pd.Series, vocabulary: tuple[str, ...] = GENRE_VOCABULARY) -> np.ndarray:
    """One-hot genre flags (len(genres) x len(vocabulary), float32), vectorized via str.get_dummies."""
    dummies = genres.fillna("").str.get_dummies(sep=GENRE_SEPARATOR)
    return dummies.reindex(columns=list(vocabulary), fill_value=0).to_numpy(dtype=np.float32)
