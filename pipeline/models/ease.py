"""EASE (Steck 2019, "Embarrassingly shallow autoencoders for sparse data"): a baseline for top-N lists.

X is the binary users x movies matrix of the training positives (every training rating, or those >=
`positive_threshold`). EASE learns a movies x movies weight matrix B with a zero diagonal that
reconstructs X from itself, min |X - X B|^2 + lambda |B|^2, in closed form:

    P = (X^T X + lambda I)^-1,    B = I - P / diag(P)    (B_ij = -P_ij / P_jj, B_jj = 0)

and a user's scores are X_u B. Only movies with a positive in train are in B: a movie without one has
a zero column in X, so full-catalogue EASE gives it B = 0 and the score 0, which is what `score_block`
returns for it without storing the zeros. An unknown user (X_u = 0) scores 0 everywhere.

B is dense: m^2 float32 numbers for m movies (1.6 GB at 20,000), and the fit's peak is about that
(X^T X is built and inverted in place with LAPACK's Cholesky routines, then symmetrized block by
block). Beyond `max_movies` the fit raises ModelSkipped before allocating anything, so the caller can
report "skipped: reason" instead of running out of memory. Time O(positives x m + m^3).

`predicts_ratings` is False: `predict` returns scores, not stars. Saved as baseline.npz + model.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.linalg import lapack

from pipeline.config import EaseParams
from pipeline.data.schema import RATING
from pipeline.errors import DataError, ModelError, ModelSkipped
from pipeline.models.base import Catalogue, SeenItems, TrainingData, check_pairs, pair_scores
from pipeline.models.baselines import Baseline, _training_positions

GRAM_BLOCK_CELLS = 1 << 24  # dense users x movies cells per block while X^T X is summed (64 MB float32)
SYMMETRIZE_ROWS = 1024


def ease_weights(gram: np.ndarray, lambda_: float) -> np.ndarray:
    """B from X^T X (float32, overwritten: the result lives in the same memory)."""
    m = len(gram)
    gram[np.arange(m), np.arange(m)] += lambda_
    # gram.T is the same symmetric matrix in Fortran order, which LAPACK can overwrite in place
    factor, info = lapack.spotrf(gram.T, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        raise ModelError(f"ease: X^T X + lambda I is not positive definite (LAPACK spotrf info {info}); raise evaluate.ease.lambda_")
    inverse, info = lapack.spotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise ModelError(f"ease: inverting X^T X + lambda I failed (LAPACK spotri info {info})")
    P = inverse.T  # the C-order view: its upper triangle holds the inverse
    for start in range(0, m, SYMMETRIZE_ROWS):
        stop = min(start + SYMMETRIZE_ROWS, m)
        P[stop:, start:stop] = P[start:stop, stop:].T
        block = P[start:stop, start:stop]
        block[np.tril_indices(stop - start, -1)] = block.T[np.tril_indices(stop - start, -1)]
    diagonal = P.diagonal().copy()
    P /= -diagonal[None, :]
    P[np.arange(m), np.arange(m)] = 0.0
    return P


def gram_matrix(X: sparse.csr_matrix) -> np.ndarray:
    """X^T X as a dense float32 array, summed over blocks of users (sparse X_block^T times dense X_block)."""
    n_users, m = X.shape
    gram = np.zeros((m, m), np.float32)
    rows = max(1, GRAM_BLOCK_CELLS // max(m, 1))
    for start in range(0, n_users, rows):
        block = X[start : start + rows]
        gram += block.T @ block.toarray()
    return gram


@dataclass(frozen=True, eq=False)
class EaseModel(Baseline):
    """Closed-form item-item model over the movies with a training positive (see module doc)."""

    movie_columns: np.ndarray  # catalogue position of each row/column of B
    weights: np.ndarray  # B, float32 (m x m)
    positives: SeenItems  # each user's positives over catalogue positions
    lambda_: float
    positive_threshold: float | None

    KIND: ClassVar[str] = "ease"
    predicts_ratings: ClassVar[bool] = False

    @classmethod
    def fit(cls, data: TrainingData, params: EaseParams | None = None) -> Self:
        """Fit on `data.ratings`; ModelSkipped (nothing allocated) when more than `max_movies` movies have a positive."""
        params = params or EaseParams()
        train, rating_range = data.ratings, data.scale.bounds
        lambda_, positive_threshold, max_movies = params.lambda_, params.positive_threshold, params.max_movies
        catalogue = Catalogue.from_movies(data.movies)
        user_ids, user_pos, movie_pos = _training_positions(train, catalogue)
        ratings = train[RATING].to_numpy(np.float64)
        positive = np.ones(len(ratings), bool) if positive_threshold is None else ratings >= positive_threshold
        if not positive.any():
            raise DataError(
                f"training ratings: no positive for EASE: none of the {len(ratings):,} ratings reaches "
                f"evaluate.ease.positive_threshold {positive_threshold:g} (highest {ratings.max():g})"
            )
        movie_columns, column = np.unique(movie_pos[positive], return_inverse=True)
        m = len(movie_columns)
        if m > max_movies:
            raise ModelSkipped(
                f"ease: {m:,} movies have a positive training rating, more than evaluate.ease.max_movies "
                f"{max_movies:,} (its dense {m:,} x {m:,} float32 matrix needs {m * m * 4 / 1e9:.3g} GB)"
            )
        X = sparse.csr_matrix((np.ones(int(positive.sum()), np.float32), (user_pos[positive], column)), shape=(len(user_ids), m))
        X.data[:] = 1.0  # a repeated (user, movie) pair is still one positive
        weights = ease_weights(gram_matrix(X), lambda_)
        kept = train.loc[positive]
        return cls(
            catalogue, SeenItems.from_ratings(train, catalogue), rating_range,
            movie_columns.astype(np.int64), weights, SeenItems.from_ratings(kept, catalogue), float(lambda_), positive_threshold,
        )  # fmt: skip

    def _inputs(self, user_ids: np.ndarray) -> sparse.csr_matrix:
        """X rows (over B's columns) of these users; an unknown user or one without positives is all zeros."""
        lookup = np.full(len(self.catalogue), -1, np.int64)
        lookup[self.movie_columns] = np.arange(len(self.movie_columns))
        block = self.positives.mask(np.asarray(user_ids, np.int64), len(self.catalogue))
        rows, cols = np.nonzero(block)
        return sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, lookup[cols])), shape=(len(user_ids), len(self.movie_columns)))

    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        """X_u B on B's movies, 0 on every other catalogue movie (sparse X_u times dense B)."""
        scores = np.zeros((len(user_ids), len(self.catalogue)))
        scores[:, self.movie_columns] = self._inputs(user_ids) @ self.weights
        return scores

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """The score of each (user_id, movie_id) pair (not stars); a movie outside the catalogue scores 0."""
        users, movies = check_pairs(pairs)
        return pair_scores(self._raw_scores, self.catalogue, users, movies)

    def _parameters(self) -> dict[str, np.ndarray]:
        return {
            "movie_columns": self.movie_columns,
            "weights": self.weights,
            **{f"positive_{key}": value for key, value in self.positives.to_arrays().items()},
        }

    def _settings(self) -> dict[str, Any]:
        return {"lambda_": self.lambda_, "positive_threshold": self.positive_threshold}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        positives = SeenItems.from_arrays(
            {key.removeprefix("positive_"): value for key, value in arrays.items() if key.startswith("positive_")}
        )
        threshold = meta["positive_threshold"]
        return cls(
            **common,
            movie_columns=arrays["movie_columns"].astype(np.int64),
            weights=arrays["weights"].astype(np.float32),
            positives=positives,
            lambda_=float(meta["lambda_"]),
            positive_threshold=None if threshold is None else float(threshold),
        )
