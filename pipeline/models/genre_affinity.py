"""Genre affinity: a cold-start baseline for top-N lists that needs only the movies' genres.

For user u and genre g, with mu_u the user's mean training rating and the sum over u's training
ratings r of movies carrying g (a movie with several genres counts toward each):

    d_ug = sum (r - mu_u) / (n_ug + prior)

that is, the user's mean rating in the genre minus their overall mean, shrunk toward 0 by `prior`
pseudo-ratings. A movie's affinity for u is the mean of d_ug over its genres (0 without genres); an
unknown user has d = 0. A movie nobody rated is scored like any other, from its genres alone.

Many movies share a genre set and so tie exactly. Ties are broken by training popularity: the score
is the affinity rounded to 6 decimals plus 1e-7 x (the movie's training ratings / (the top count + 1)),
less than the rounding step, so a higher affinity always ranks first, then the more-rated movie, then
the lower movie_id (the order of `top_n`). An unknown user's list is therefore the popularity ranking.

`predicts_ratings` is False: `predict` returns these scores, not stars. Saved as baseline.npz + model.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.config import GenreAffinityParams
from pipeline.data.schema import GENRES, MOVIE, RATING, genre_matrix
from pipeline.errors import DataError
from pipeline.models.base import Catalogue, SeenItems, TrainingData, check_pairs, index_of, pair_scores
from pipeline.models.baselines import Baseline, _training_positions

DECIMALS = 6
TIE_BREAK = 1e-7  # below the rounding step 1e-6: only orders movies of equal (rounded) affinity


def genre_deviations(
    ratings: np.ndarray, user_pos: np.ndarray, movie_pos: np.ndarray, flags: np.ndarray, n_users: int, prior: float
) -> np.ndarray:
    """d_ug (users x genres): shrunk mean deviation from the user's mean per genre (module doc)."""
    counts = np.bincount(user_pos, minlength=n_users)
    means = np.bincount(user_pos, weights=ratings, minlength=n_users) / np.maximum(counts, 1)
    shape = (n_users, flags.shape[0])
    deviation = sparse.csr_matrix((ratings - means[user_pos], (user_pos, movie_pos)), shape=shape)
    rated = sparse.csr_matrix((np.ones(len(ratings)), (user_pos, movie_pos)), shape=shape)
    genre_flags = sparse.csr_matrix(flags.astype(np.float64))
    sums, n = (deviation @ genre_flags).toarray(), (rated @ genre_flags).toarray()
    denominator = n + prior
    return np.divide(sums, denominator, out=np.zeros_like(sums), where=denominator > 0)


@dataclass(frozen=True, eq=False)
class GenreAffinityModel(Baseline):
    """Ranks movies by the user's taste for their genres, ties by popularity (see module doc)."""

    user_ids: np.ndarray  # sorted training users
    deviations: np.ndarray  # d_ug, one row per user_ids entry
    genre_weights: np.ndarray  # catalogue x genres: 1 / (the movie's number of genres) on its genres
    tie_break: np.ndarray  # per catalogue movie, in [0, TIE_BREAK)
    prior: float

    KIND: ClassVar[str] = "genre_affinity"
    predicts_ratings: ClassVar[bool] = False

    @classmethod
    def fit(cls, data: TrainingData, params: GenreAffinityParams | None = None) -> Self:
        train, movies, rating_range = data.ratings, data.movies, data.scale.bounds
        prior = (params or GenreAffinityParams()).prior
        if GENRES not in movies.columns:
            raise DataError(f"movies: missing column {GENRES}; the genre-affinity baseline ranks by genres")
        catalogue = Catalogue.from_movies(movies)
        user_ids, user_pos, movie_pos = _training_positions(train, catalogue)
        flags = genre_matrix(movies.sort_values(MOVIE)[GENRES]).astype(np.float64)  # catalogue order
        per_movie = flags.sum(axis=1, keepdims=True)
        genre_weights = np.divide(flags, per_movie, out=np.zeros_like(flags), where=per_movie > 0)
        deviations = genre_deviations(train[RATING].to_numpy(np.float64), user_pos, movie_pos, flags, len(user_ids), prior)
        counts = np.bincount(movie_pos, minlength=len(catalogue)).astype(np.float64)
        tie_break = TIE_BREAK * counts / (counts.max() + 1.0)
        seen = SeenItems.from_ratings(train, catalogue)
        return cls(catalogue, seen, rating_range, user_ids, deviations, genre_weights, tie_break, float(prior))

    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        rows = np.where((pos >= 0)[:, None], self.deviations[np.maximum(pos, 0)], 0.0)
        return np.round(rows @ self.genre_weights.T, DECIMALS) + self.tie_break

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """The score of each (user_id, movie_id) pair (not stars); a movie outside the catalogue scores 0."""
        users, movies = check_pairs(pairs)
        return pair_scores(self._raw_scores, self.catalogue, users, movies)

    def _parameters(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "deviations": self.deviations, "genre_weights": self.genre_weights, "tie_break": self.tie_break}

    def _settings(self) -> dict[str, Any]:
        return {"prior": self.prior}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        return cls(
            **common,
            user_ids=arrays["user_ids"].astype(np.int64),
            deviations=arrays["deviations"].astype(np.float64),
            genre_weights=arrays["genre_weights"].astype(np.float64),
            tie_break=arrays["tie_break"].astype(np.float64),
            prior=float(meta["prior"]),
        )
