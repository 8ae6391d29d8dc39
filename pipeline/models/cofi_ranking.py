"""Collaborative filtering for top-N lists: weighted matrix factorization over every (user, movie) cell.

The parameters are the rating model's (pipeline/models/cofi.py): movie features x_i, user weights w_j,
a user bias b_j and, with `movie_bias`, a movie bias c_i. The score is

    s_ij = x_i . w_j + b_j (+ c_i)

but it is fitted to preferences instead of stars (Hu, Koren & Volinsky 2008): p_ij = 1 when user j has
a positive training rating of movie i (every rating, or those >= `positive_threshold`), else 0, over ALL
users x movies cells, each weighted by a confidence: c_ij = 1 + alpha f(r_ij) on positives, 1 elsewhere:

    J = sum over all (i, j) of c_ij (p_ij - s_ij)^2 + sum_j lambda_j |w_j|^2 + sum_i lambda_i |x_i|^2

lambda_j = lambda (sum_i c_ij)^nu and lambda_i = lambda (sum_j c_ij)^nu: with nu (`reg_exponent`) = 1 a
row is regularized in proportion to the weight of its cells (frequency-scaled regularization, Rendle et
al. 2021, "Revisiting the performance of iALS"); the biases are not penalized.

No users x movies matrix is ever formed. With U = [W, b, 1] and V = [X, 1, c] (so s = U V^T), the sum
over all cells is read off the two small Gramians and corrected on the positives:

    sum over all cells of s^2 = sum((U^T U) * (V^T V))
    J = that + sum over positives of [c (1 - s)^2 - s^2] + penalties

Time per iteration O(positives x k + (users + movies) x k^2), memory O(positives + (users + movies) x k).

Training: alternating least squares. With the movies fixed, J is quadratic in each user's (w_j, b_j);
its minimizer solves (G + sum over j's positives of (c - 1) v v^T + lambda_j D) u = rhs, G = V^T V
computed once per half-iteration. `cg_steps` conjugate-gradient steps, warm-started at the current
factors and batched over all users at once with sparse products (the variant of Takacs et al. 2011
that `implicit` uses), approximately solve it in O(positives x k) per step; `cg_steps: 0` solves it
exactly (batched np.linalg.solve, building every k x k system: O(positives x k^2), for checks and
small data). Then the same for the movies. Each half-iteration lowers J (CG minimizes the quadratic
monotonically from its starting point), and `history.cost` records J after every iteration.

Why ALS in NumPy rather than gradient descent in TensorFlow (measured on the ml-latest-small split,
benchmarks/README.md, "Ranking models"): each half-step is an exact or near-exact minimization with
no learning rate to tune, converging in ~10-15 iterations, where full-batch Adam on the same objective
(the all-cells term's gradient is 2 U (V^T V), just as cheap) needed hundreds of steps and a tuned
learning rate for a worse nDCG; and importing TensorFlow alone takes longer than the whole ALS fit.

Fallbacks: every catalogue movie has parameters (one nobody rated is fitted to p = 0 everywhere); an
unknown user has w = 0, b = 0 and so scores c_i (0 without movie biases); `predict` of a movie outside
the catalogue is 0 (the target of a cell without a positive). `predicts_ratings` is False: `predict`
returns these scores, not stars. A new user described by a few ratings is fitted in closed form with
the movies fixed (`fit_new_user`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from pipeline.config import CofiRankingParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError, data_error
from pipeline.io import write_json
from pipeline.models.base import (
    Catalogue,
    ParameterCounts,
    ParameterTotal,
    SeenItems,
    TopList,
    TrainingData,
    check_pairs,
    index_of,
    load_arrays,
    rank_catalogue,
    read_model_meta,
    recommendation_frame,
    save_arrays,
    seen_exclusion,
)
from pipeline.models.cofi import check_new_ratings, check_train, factor_parameters
from pipeline.models.ranking import SupportRanking

FORMAT = "cofi-ranking-1"
ARRAYS = "cofi_ranking.npz"
META = "cofi_ranking.json"
CHUNK = 1 << 13  # positives gathered at once (two CHUNK x k blocks, a few MB): bounded memory
SOLVE_CELLS = 1 << 22  # float64 entries of the k x k systems built at once by the exact solver


# ---- the positives ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cells:
    """The positive cells of one side as CSR rows: row r's positives are indices[indptr[r]:indptr[r+1]],
    each with weight = c - 1 = alpha f(rating) (may be 0: a positive still has p = 1)."""

    indptr: np.ndarray  # int64, n_rows + 1
    indices: np.ndarray  # int64 positions on the other side
    weight: np.ndarray  # float64 per positive
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def rows(self) -> np.ndarray:
        """The row of every positive."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))

    def matrix(self, data: np.ndarray) -> sparse.csr_matrix:
        """The rows x cols sparse matrix with this structure and the given value per positive."""
        return sparse.csr_matrix((data, self.indices, self.indptr), shape=(self.n_rows, self.n_cols))

    def row_totals(self) -> np.ndarray:
        """sum over all cells of a row of c = its cell count + its positives' weights."""
        return self.n_cols + np.bincount(self.rows, weights=self.weight, minlength=self.n_rows)


def _cells(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_rows: int, n_cols: int) -> Cells:
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)
    return Cells(indptr, cols[order].astype(np.int64), weight[order].astype(np.float64), n_cols)


@dataclass(frozen=True)
class Interactions:
    """The training positives, by user and by movie (catalogue positions)."""

    user_ids: np.ndarray  # sorted ids of every user with a training rating
    by_user: Cells  # users x catalogue
    by_movie: Cells  # catalogue x users


def confidence_weights(ratings: np.ndarray, params: CofiRankingParams) -> np.ndarray:
    """c - 1 = alpha f(rating) for each positive."""
    f = ratings if params.confidence == "rating" else np.ones_like(ratings)
    return params.alpha * f


def interactions(train: pd.DataFrame, catalogue: Catalogue, params: CofiRankingParams, source: str) -> Interactions:
    """The positives of `train`, or a DataError when it cannot be trained on (none, unknown movies, NaN)."""
    check_train(train, source)
    user_ids, user_pos = np.unique(train[USER].to_numpy(np.int64), return_inverse=True)
    movie_ids = train[MOVIE].to_numpy(np.int64)
    movie_pos = catalogue.index(movie_ids)
    if (movie_pos < 0).any():
        unknown = np.unique(movie_ids[movie_pos < 0])
        raise data_error(
            source, "rate movies missing from the movies table", column=MOVIE, count=int((movie_pos < 0).sum()), examples=unknown
        )
    ratings = train[RATING].to_numpy(np.float64)
    threshold = params.positive_threshold
    positive = np.ones(len(ratings), bool) if threshold is None else ratings >= threshold
    if not positive.any():
        raise DataError(
            f"{source}: no positive interaction to train the ranking model on: none of the {len(ratings):,} ratings "
            f"reaches cofi_ranking.positive_threshold {threshold:g} (highest rating {ratings.max():g}); no model was written"
        )
    # one cell per (user, movie): a repeated rating keeps its first row
    n_users, n_movies = len(user_ids), len(catalogue)
    keys, first = np.unique(user_pos[positive].astype(np.int64) * n_movies + movie_pos[positive], return_index=True)
    weight = confidence_weights(ratings[positive][first], params)
    users, movies = keys // n_movies, keys % n_movies
    return Interactions(
        user_ids,
        _cells(users, movies, weight, n_users, n_movies),
        _cells(movies, users, weight, n_movies, n_users),
    )


# ---- the objective ----------------------------------------------------------------------------------


def layout(k: int, movie_bias: bool) -> dict[str, np.ndarray]:
    """Column masks of U = [W, b, (1)] and V = [X, 1, (c)]: which columns each side solves for, and
    which are penalized (the features only)."""
    extra = 2 if movie_bias else 1
    features = np.r_[np.ones(k, bool), np.zeros(extra, bool)]
    user_free = np.r_[np.ones(k + 1, bool), np.zeros(extra - 1, bool)]
    movie_free = np.r_[np.ones(k, bool), False, np.ones(extra - 1, bool)]
    return {"user_free": user_free, "movie_free": movie_free, "penalized": features}


def row_dots(A: np.ndarray, B: np.ndarray, rows: np.ndarray, cols: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """A[rows[t]] . B[cols[t]] for every t, computed in `dtype`, CHUNK pairs at a time (the gathered
    blocks stay in cache, which measured faster than one big gather)."""
    A, B = A.astype(dtype, copy=False), B.astype(dtype, copy=False)
    out = np.empty(len(rows), np.float64)
    for start in range(0, len(rows), CHUNK):
        part = slice(start, start + CHUNK)
        out[part] = np.einsum("ij,ij->i", np.take(A, rows[part], axis=0), np.take(B, cols[part], axis=0))
    return out


def regularization(cells: Cells, params: CofiRankingParams) -> np.ndarray:
    """lambda_r = lambda (sum over the row's cells of c)^reg_exponent, one per row of `cells`."""
    return params.lambda_ * cells.row_totals() ** params.reg_exponent


def weighted_cost(
    U: np.ndarray, V: np.ndarray, by_user: Cells, lambda_users: np.ndarray, lambda_movies: np.ndarray, penalized: np.ndarray
) -> float:
    """J over every users x movies cell, with the Gramian trick (never a dense users x movies array)."""
    every_cell = float(np.sum((U.T @ U) * (V.T @ V)))
    s = row_dots(U, V, by_user.rows, by_user.indices)
    c = 1.0 + by_user.weight
    positives = float(np.sum(c * (1.0 - s) ** 2 - s**2))
    penalty = float(lambda_users @ np.sum(U[:, penalized] ** 2, axis=1) + lambda_movies @ np.sum(V[:, penalized] ** 2, axis=1))
    return every_cell + positives + penalty


def dense_weighted_cost(
    U: np.ndarray, V: np.ndarray, P: np.ndarray, C: np.ndarray, lambda_users: np.ndarray, lambda_movies: np.ndarray, penalized: np.ndarray
) -> float:
    """The same J written densely (users x movies P and C), for teaching and tests."""
    penalty = lambda_users @ np.sum(U[:, penalized] ** 2, axis=1) + lambda_movies @ np.sum(V[:, penalized] ** 2, axis=1)
    return float(np.sum(C * (P - U @ V.T) ** 2) + penalty)


# ---- one half-iteration -----------------------------------------------------------------------------


def solve_side(
    A: np.ndarray, B: np.ndarray, cells: Cells, free: np.ndarray, penalized: np.ndarray, lambdas: np.ndarray, cg_steps: int
) -> np.ndarray:
    """A with its free columns minimizing J for B fixed (A's other columns are the constant 1).

    Row a minimizes sum_b c_ab (p_ab - s_ab)^2 + lambda_a |a_pen|^2 with s_ab = a_F . B_F,b + o_b, where
    o_b sums B's columns facing A's constant ones (the other side's bias). The normal equations:
        (G + sum over a's positives of w B_F,b B_F,b^T + lambda_a D) a_F
            = sum over a's positives of (1 + w - w o_b) B_F,b - B_F^T o,   G = B_F^T B_F, w = c - 1.
    """
    BF = np.ascontiguousarray(B[:, free])
    offset = B[:, ~free].sum(axis=1)
    gram = BF.T @ BF
    w = cells.weight
    rhs = cells.matrix(1.0 + w - w * offset[cells.indices]) @ BF - BF.T @ offset
    diagonal = lambdas[:, None] * penalized[free][None, :]
    out = A.copy()
    if cg_steps == 0:
        out[:, free] = _exact(BF, gram, cells, diagonal, rhs)
        return out
    rows = cells.rows

    def apply(X: np.ndarray) -> np.ndarray:
        # the per-positive dots in float32: twice as fast, and CG only approximates the solve anyway
        sampled = cells.matrix(w * row_dots(X, BF, rows, cells.indices, np.float32))
        return X @ gram + sampled @ BF + diagonal * X

    out[:, free] = conjugate_gradient(apply, rhs, A[:, free], cg_steps)
    return out


def _exact(BF: np.ndarray, gram: np.ndarray, cells: Cells, diagonal: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Every row's normal equations built and solved exactly, a block of rows at a time.

    The sum over a row's positives of w B_F,b B_F,b^T is a sparse product with the flattened outer
    products of the B rows the block touches: O(positives x k^2) time, O(touched rows x k^2) memory.
    """
    f = BF.shape[1]
    weighted = cells.matrix(cells.weight)
    solution = np.empty_like(rhs)
    step = max(1, SOLVE_CELLS // (f * f))
    for start in range(0, cells.n_rows, step):
        block = slice(start, start + step)
        rows = weighted[block]
        touched = np.unique(rows.indices)
        outer = (BF[touched, :, None] * BF[touched, None, :]).reshape(len(touched), f * f)
        systems = np.asarray(rows[:, touched] @ outer).reshape(-1, f, f) + gram
        systems[:, np.arange(f), np.arange(f)] += diagonal[block]
        solution[block] = np.linalg.solve(systems, rhs[block][:, :, None])[:, :, 0]
    return solution


def conjugate_gradient(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, start: np.ndarray, steps: int) -> np.ndarray:
    """`steps` CG iterations on every row's system at once (apply(X) = each row's matrix times its row of X)."""
    X = start.copy()
    R = rhs - apply(X)
    P = R.copy()
    norms = np.einsum("ij,ij->i", R, R)
    for _ in range(steps):
        AP = apply(P)
        curvature = np.einsum("ij,ij->i", P, AP)
        alpha = np.divide(norms, curvature, out=np.zeros_like(norms), where=curvature > 0)
        X += alpha[:, None] * P
        R -= alpha[:, None] * AP
        new_norms = np.einsum("ij,ij->i", R, R)
        beta = np.divide(new_norms, norms, out=np.zeros_like(norms), where=norms > 0)
        P = R + beta[:, None] * P
        norms = new_norms
    return X


# ---- training ---------------------------------------------------------------------------------------


@dataclass
class History:
    """J after every iteration, and the fit's wall time."""

    cost: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def iterations_run(self) -> int:
        return len(self.cost)


def user_matrix(factors: Mapping[str, np.ndarray]) -> np.ndarray:
    """U = [W, b, (1)]."""
    columns = [factors["W"], factors["b"][:, None]]
    if "c" in factors:
        columns.append(np.ones((len(factors["b"]), 1)))
    return np.hstack(columns).astype(np.float64)


def movie_matrix(factors: Mapping[str, np.ndarray]) -> np.ndarray:
    """V = [X, 1, (c)]."""
    columns = [factors["X"], np.ones((len(factors["X"]), 1))]
    if "c" in factors:
        columns.append(factors["c"][:, None])
    return np.hstack(columns).astype(np.float64)


def split_factors(U: np.ndarray, V: np.ndarray, k: int, movie_bias: bool) -> dict[str, np.ndarray]:
    factors = {"X": V[:, :k].copy(), "W": U[:, :k].copy(), "b": U[:, k].copy()}
    if movie_bias:
        factors["c"] = V[:, k + 1].copy()
    return factors


def initial_factors(n_users: int, n_movies: int, params: CofiRankingParams) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([params.seed, 0])
    k = params.num_features
    scale = params.init_scale / np.sqrt(k)
    factors = {"X": rng.standard_normal((n_movies, k)) * scale, "W": rng.standard_normal((n_users, k)) * scale, "b": np.zeros(n_users)}
    if params.movie_bias:
        factors["c"] = np.zeros(n_movies)
    return factors


def train_factors(data: Interactions, params: CofiRankingParams, progress: bool | None = None) -> tuple[dict[str, np.ndarray], History]:
    """ALS from the seeded start; raises ModelError if J stops being finite (nothing to save)."""
    # One BLAS thread: the products here are small ((rows x k) times (k x k)), where BLAS threads cost
    # more than they save; on a busy 2-core machine the default threads tripled the fit's CPU time.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(data, params, progress)


def _train(data: Interactions, params: CofiRankingParams, progress: bool | None) -> tuple[dict[str, np.ndarray], History]:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    masks = layout(params.num_features, params.movie_bias)
    factors = initial_factors(data.by_user.n_rows, data.by_movie.n_rows, params)
    U, V = user_matrix(factors), movie_matrix(factors)
    lambda_users, lambda_movies = regularization(data.by_user, params), regularization(data.by_movie, params)
    history = History()
    bar = tqdm(range(params.iterations), desc="cofi_ranking", unit="it", disable=None if progress is None else not progress)
    for iteration in bar:
        U = solve_side(U, V, data.by_user, masks["user_free"], masks["penalized"], lambda_users, params.cg_steps)
        V = solve_side(V, U, data.by_movie, masks["movie_free"], masks["penalized"], lambda_movies, params.cg_steps)
        cost = weighted_cost(U, V, data.by_user, lambda_users, lambda_movies, masks["penalized"])
        if not np.isfinite(cost):
            raise ModelError(
                f"cofi_ranking: the cost became {cost} at iteration {iteration}; raise cofi_ranking.lambda_ (no model was written)"
            )
        history.cost.append(cost)
        bar.set_postfix(cost=f"{cost:.6g}")
    history.seconds = time.perf_counter() - started
    return split_factors(U, V, params.num_features, params.movie_bias), history


# ---- the model --------------------------------------------------------------------------------------


class CofiRankingModel(SupportRanking, ParameterTotal):
    """A trained implicit-feedback factorization: scores for ranking, not stars (see module doc)."""

    predicts_ratings: ClassVar[bool] = False

    def __init__(
        self,
        *,
        user_ids: np.ndarray,
        factors: Mapping[str, np.ndarray],
        catalogue: Catalogue,
        seen: SeenItems,
        params: CofiRankingParams,
        rating_range: tuple[float, float],
        history: History | None = None,
    ) -> None:
        self.user_ids = np.asarray(user_ids, np.int64)
        self.factors = {name: np.asarray(value, np.float64) for name, value in factors.items()}
        self.catalogue, self.seen, self.params = catalogue, seen, params
        self.rating_range = (float(rating_range[0]), float(rating_range[1]))
        self.history = history or History()
        self._V = movie_matrix(self.factors)
        self._U = user_matrix(self.factors)

    @classmethod
    def fit(cls, data: TrainingData, params: CofiRankingParams, *, progress: bool | None = None) -> CofiRankingModel:
        """Train on `data.ratings` (ratings contract) over the whole catalogue `data.movies`."""
        catalogue = Catalogue.from_movies(data.movies)
        positives = interactions(data.ratings, catalogue, params, data.source)
        factors, history = train_factors(positives, params, progress)
        seen = SeenItems.from_ratings(data.ratings, catalogue)
        return cls(
            user_ids=positives.user_ids, factors=factors, catalogue=catalogue, seen=seen, params=params,
            rating_range=data.scale.bounds, history=history,
        )  # fmt: skip

    def parameters(self) -> ParameterCounts:
        return factor_parameters(self.factors)

    def embedded_movies(self) -> tuple[np.ndarray, np.ndarray]:
        """(the catalogue's movie ids, their x_i)."""
        return self.catalogue.movie_ids, self.factors["X"]

    # -- scores --
    def _user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of U for these users; an unknown user is w = 0, b = 0."""
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        rows = self._U[np.maximum(pos, 0)]
        rows[pos < 0] = self._unknown_user()
        return rows

    def _unknown_user(self) -> np.ndarray:
        row = np.zeros(self._U.shape[1])
        row[self.params.num_features + 1 :] = 1.0  # the constant facing the movie bias, if any
        return row

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        """(len(user_ids) x catalogue) scores s = x_i . w_j + b_j (+ c_i); any user id is accepted."""
        return self.rank_scores(self._user_rows(user_ids) @ self._V.T)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """The score of each (user_id, movie_id) pair (not stars); a movie outside the catalogue scores 0."""
        users, movies = check_pairs(pairs)
        movie = self.catalogue.index(movies)
        known = movie >= 0
        out = np.zeros(len(users))
        out[known] = np.einsum("ij,ij->i", self._user_rows(users[known]), self._V[movie[known]])
        return out

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """top_list() as a DataFrame[movie_id, title, score]."""
        return self.top_list(user_id, n, exclude_seen).frame()

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList:
        """The n best-scored movies for a training user (unseen ones only by default)."""
        if index_of(np.array([user_id], np.int64), self.user_ids)[0] < 0:
            raise ModelError(
                f"unknown user {user_id}: not in the training ratings of the cofi_ranking model (a new user can give ratings instead)"
            )
        scores = self.score_block(np.array([user_id], np.int64))[0]
        return rank_catalogue(self.catalogue, scores, n, seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen))

    # -- a new user --
    def fit_new_user(self, ratings: Mapping[int, float]) -> tuple[np.ndarray, float]:
        """(w, b) minimizing J for one more user with the movies held fixed: the exact solve of one
        user's normal equations (the positives among `ratings` by the training threshold and confidence)."""
        movie_ids, values = check_new_ratings(ratings, self.catalogue, self.rating_range)
        positive = np.ones(len(values), bool) if self.params.positive_threshold is None else values >= self.params.positive_threshold
        movie_pos = self.catalogue.index(movie_ids[positive])
        keys, first = np.unique(movie_pos, return_index=True)
        weight = confidence_weights(values[positive][first], self.params)
        cells = Cells(np.array([0, len(keys)], np.int64), keys.astype(np.int64), weight, len(self.catalogue))
        masks = layout(self.params.num_features, self.params.movie_bias)
        lambdas = regularization(cells, self.params)
        row = solve_side(self._unknown_user()[None, :], self._V, cells, masks["user_free"], masks["penalized"], lambdas, 0)[0]
        k = self.params.num_features
        return row[:k], float(row[k])

    def recommend_for_ratings(self, ratings: Mapping[int, float], n: int = 10) -> pd.DataFrame:
        """Top movies for a new user described by {movie_id: rating}, the rated movies excluded."""
        w, b = self.fit_new_user(ratings)
        row = self._unknown_user()
        k = self.params.num_features
        row[:k], row[k] = w, b
        exclude = np.zeros(len(self.catalogue), bool)
        exclude[self.catalogue.index(np.fromiter(ratings, np.int64, len(ratings)))] = True
        return recommendation_frame(self.catalogue, self.rank_scores((self._V @ row)[None, :])[0], n, exclude)

    # -- persistence --
    def save(self, directory: str | Path) -> None:
        """cofi_ranking.npz (factors, user ids, catalogue, seen items, cost history) + cofi_ranking.json; no pickle."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {f"factor_{name}": value for name, value in self.factors.items()}
        arrays.update(
            user_ids=self.user_ids,
            cost_history=np.asarray(self.history.cost, np.float64),
            **self.catalogue.to_arrays(),
            **self.seen.to_arrays(),
        )
        save_arrays(directory, ARRAYS, arrays)
        meta = {
            "format": FORMAT,
            "params": self.params.model_dump(),
            "rating_range": list(self.rating_range),
            "seconds": self.history.seconds,
        }
        write_json(directory / META, meta)

    @classmethod
    def load(cls, directory: str | Path) -> CofiRankingModel:
        directory = Path(directory)
        meta = read_model_meta(directory, META)
        if meta.get("format") != FORMAT:
            raise ModelError(f"{directory / META}: not a {FORMAT} model (format {meta.get('format')!r}); retrain it")
        arrays = load_arrays(directory, ARRAYS)
        factors = {key.removeprefix("factor_"): value for key, value in arrays.items() if key.startswith("factor_")}
        return cls(
            user_ids=arrays["user_ids"],
            factors=factors,
            catalogue=Catalogue.from_arrays(arrays),
            seen=SeenItems.from_arrays(arrays),
            params=CofiRankingParams.model_validate(meta["params"]),
            rating_range=tuple(meta["rating_range"]),
            history=History(cost=arrays["cost_history"].tolist(), seconds=float(meta["seconds"])),
        )
