"""Baselines every trained model must beat, fitted on the training split (the model contract of base.py).

- GlobalMeanModel: every rating is the training mean.
- BiasModel: mean + user bias + movie bias, regularized (Surprise's BaselineOnly, ALS flavour).
- PopularityModel: ranks movies by their number of training ratings; it predicts no ratings.

Fallbacks: an unknown user or movie has bias 0 (so the global mean is the last resort);
`recommend` for a user absent from train is a ModelError, while `score_block` scores any user.
Saved as baseline.npz (no pickle) + model.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from pipeline.config import BiasParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError
from pipeline.io import write_json
from pipeline.models.base import (
    Catalogue,
    SeenItems,
    TopList,
    TrainingData,
    check_pairs,
    index_of,
    load_arrays,
    rank_catalogue,
    read_model_meta,
    save_arrays,
    seen_exclusion,
)
from pipeline.models.ranking import SupportRanking

ARRAYS_FILE = "baseline.npz"
META_FILE = "model.json"


def _training_positions(train: pd.DataFrame, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_ids sorted, user position per rating, catalogue position per rating)."""
    missing = [c for c in (USER, MOVIE, RATING) if c not in train.columns]
    if missing:
        raise DataError(f"training ratings: missing column(s) {', '.join(missing)}")
    if len(train) == 0:
        raise DataError("training ratings: no rows to fit on")
    user_ids, user_pos = np.unique(train[USER].to_numpy(np.int64), return_inverse=True)
    movie_pos = catalogue.index(train[MOVIE].to_numpy(np.int64))
    if (movie_pos < 0).any():
        bad = train.loc[movie_pos < 0, MOVIE]
        raise DataError(f"training ratings: column '{MOVIE}': {len(bad)} rows rate movies missing from the catalogue (e.g. {bad.iloc[0]})")
    return user_ids, user_pos.astype(np.int64), movie_pos


def fit_biases(
    ratings: np.ndarray,
    user_pos: np.ndarray,
    movie_pos: np.ndarray,
    n_users: int,
    n_movies: int,
    reg_user: float,
    reg_movie: float,
    iterations: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Alternating closed-form ridge updates of user then movie biases (Surprise's baseline ALS).

    b_u = sum_i(r - mu - b_i) / (reg_user + n_u);  b_i = sum_u(r - mu - b_u) / (reg_movie + n_i).
    A user or movie with no ratings (and zero regularization) keeps bias 0.
    """
    mean = float(ratings.mean())
    residual = ratings - mean
    user_denominator = reg_user + np.bincount(user_pos, minlength=n_users)
    movie_denominator = reg_movie + np.bincount(movie_pos, minlength=n_movies)
    user_bias, movie_bias = np.zeros(n_users), np.zeros(n_movies)
    for _ in range(iterations):
        sums = np.bincount(user_pos, weights=residual - movie_bias[movie_pos], minlength=n_users)
        user_bias = np.divide(sums, user_denominator, out=np.zeros(n_users), where=user_denominator > 0)
        sums = np.bincount(movie_pos, weights=residual - user_bias[user_pos], minlength=n_movies)
        movie_bias = np.divide(sums, movie_denominator, out=np.zeros(n_movies), where=movie_denominator > 0)
    return mean, user_bias, movie_bias


@dataclass(frozen=True, eq=False)
class Baseline(SupportRanking):
    """What every baseline shares: catalogue, training movies per user, rating range, ranking, persistence."""

    catalogue: Catalogue
    seen: SeenItems
    rating_range: tuple[float, float]

    KIND: ClassVar[str] = ""
    predicts_ratings: ClassVar[bool] = True

    # ---- what each baseline defines ------------------------------------------------------
    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        """(len(user_ids) x len(catalogue)) scores before any ranking adjustment; any user id is accepted."""
        raise NotImplementedError

    def _parameters(self) -> dict[str, np.ndarray]:
        return {}

    def _settings(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        raise NotImplementedError

    # ---- the shared contract ----------------------------------------------------------------
    def _clip(self, values: np.ndarray) -> np.ndarray:
        low, high = self.rating_range
        return np.clip(np.asarray(values, dtype=np.float64), low, high)

    def score_block(self, user_ids: np.ndarray) -> np.ndarray:
        """The scores recommend() ranks by (support-adjusted with a ranking set, see `with_ranking`)."""
        return self.rank_scores(self._raw_scores(user_ids))

    def recommend(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """top_list() as a DataFrame[movie_id, title, score]."""
        return self.top_list(user_id, n, exclude_seen).frame()

    def top_list(self, user_id: int, n: int = 10, exclude_seen: bool = True) -> TopList:
        """The n best-scored movies for a training user (unseen ones only by default)."""
        if index_of(np.array([user_id], dtype=np.int64), self.seen.user_ids)[0] < 0:
            raise ModelError(f"user {user_id}: not in the training data of the {self.KIND} model")
        scores = self.score_block(np.array([user_id], dtype=np.int64))[0]
        exclude = seen_exclusion(self.seen, user_id, len(self.catalogue), exclude_seen)
        return rank_catalogue(self.catalogue, scores, n, exclude)

    def save(self, directory: str | Path) -> None:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_arrays(folder, ARRAYS_FILE, {**self.catalogue.to_arrays(), **self.seen.to_arrays(), **self._parameters()})
        meta = {"kind": self.KIND, "rating_range": [float(v) for v in self.rating_range], **self._settings()}
        write_json(folder / META_FILE, meta)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        folder = Path(directory)
        meta = read_model_meta(folder, META_FILE)
        if meta.get("kind") != cls.KIND:
            raise ModelError(f"{folder}: holds a {meta.get('kind')!r} model, not {cls.KIND!r}")
        arrays = load_arrays(folder, ARRAYS_FILE)
        low, high = meta["rating_range"]
        common = {
            "catalogue": Catalogue.from_arrays(arrays),
            "seen": SeenItems.from_arrays(arrays),
            "rating_range": (float(low), float(high)),
        }
        return cls._rebuild(common, arrays, meta)


@dataclass(frozen=True, eq=False)
class GlobalMeanModel(Baseline):
    """Predicts the training mean for everyone; its ranking is the catalogue order (all scores tie)."""

    mean: float

    KIND: ClassVar[str] = "global_mean"

    @classmethod
    def fit(cls, data: TrainingData, params: None = None) -> Self:
        """The training mean (the model has no parameters to set)."""
        train, catalogue = data.ratings, Catalogue.from_movies(data.movies)
        _training_positions(train, catalogue)
        return cls(catalogue, SeenItems.from_ratings(train, catalogue), data.scale.bounds, float(train[RATING].mean()))

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        users, _ = check_pairs(pairs)
        return self._clip(np.full(len(users), self.mean))

    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        low, high = self.rating_range
        return np.full((len(user_ids), len(self.catalogue)), float(np.clip(self.mean, low, high)))

    def _settings(self) -> dict[str, Any]:
        return {"mean": self.mean}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        return cls(**common, mean=float(meta["mean"]))


@dataclass(frozen=True, eq=False)
class BiasModel(Baseline):
    """mean + b_user + b_movie with ridge-regularized biases (defaults: Surprise BaselineOnly's ALS)."""

    mean: float
    user_ids: np.ndarray  # sorted training users
    user_bias: np.ndarray  # one per user_ids entry
    movie_bias: np.ndarray  # one per catalogue movie (0 for movies without training ratings)
    reg_user: float
    reg_movie: float
    iterations: int

    KIND: ClassVar[str] = "bias"

    @classmethod
    def fit(cls, data: TrainingData, params: BiasParams | None = None) -> Self:
        """Biases with `params`' regularization and passes (default BiasParams(): Surprise BaselineOnly's)."""
        p = params or BiasParams()
        train, catalogue = data.ratings, Catalogue.from_movies(data.movies)
        user_ids, user_pos, movie_pos = _training_positions(train, catalogue)
        mean, user_bias, movie_bias = fit_biases(
            train[RATING].to_numpy(np.float64), user_pos, movie_pos, len(user_ids), len(catalogue),
            p.reg_user, p.reg_movie, p.iterations,
        )  # fmt: skip
        seen = SeenItems.from_ratings(train, catalogue)
        return cls(catalogue, seen, data.scale.bounds, mean, user_ids, user_bias, movie_bias, p.reg_user, p.reg_movie, p.iterations)

    def _user_biases(self, user_ids: np.ndarray) -> np.ndarray:
        pos = index_of(np.asarray(user_ids, np.int64), self.user_ids)
        return np.where(pos >= 0, self.user_bias[np.maximum(pos, 0)], 0.0) if len(self.user_ids) else np.zeros(len(pos))

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        users, movies = check_pairs(pairs)
        movie_pos = self.catalogue.index(movies)
        movie_bias = np.where(movie_pos >= 0, self.movie_bias[np.maximum(movie_pos, 0)], 0.0)
        return self._clip(self.mean + self._user_biases(users) + movie_bias)

    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        """Unclipped mean + b_u + b_i: clipping would tie every movie above the top of the scale."""
        return self.mean + self._user_biases(user_ids)[:, None] + self.movie_bias[None, :]

    def _parameters(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "user_bias": self.user_bias, "movie_bias": self.movie_bias}

    def _settings(self) -> dict[str, Any]:
        return {"mean": self.mean, "reg_user": self.reg_user, "reg_movie": self.reg_movie, "iterations": self.iterations}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        return cls(
            **common,
            mean=float(meta["mean"]),
            user_ids=arrays["user_ids"].astype(np.int64),
            user_bias=arrays["user_bias"].astype(np.float64),
            movie_bias=arrays["movie_bias"].astype(np.float64),
            reg_user=float(meta["reg_user"]),
            reg_movie=float(meta["reg_movie"]),
            iterations=int(meta["iterations"]),
        )


@dataclass(frozen=True, eq=False)
class PopularityModel(Baseline):
    """Ranks movies by number of training ratings (ties: lower movie_id first); no rating predictions."""

    counts: np.ndarray  # training ratings per catalogue movie

    KIND: ClassVar[str] = "popularity"
    predicts_ratings: ClassVar[bool] = False

    @classmethod
    def fit(cls, data: TrainingData, params: None = None) -> Self:
        """Training ratings per catalogue movie (the model has no parameters to set)."""
        train, catalogue = data.ratings, Catalogue.from_movies(data.movies)
        _, _, movie_pos = _training_positions(train, catalogue)
        counts = np.bincount(movie_pos, minlength=len(catalogue)).astype(np.float64)
        return cls(catalogue, SeenItems.from_ratings(train, catalogue), data.scale.bounds, counts)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        raise ModelError("the popularity baseline ranks movies; it does not predict ratings")

    def _raw_scores(self, user_ids: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(user_ids), len(self.catalogue))).copy()

    def _parameters(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    @classmethod
    def _rebuild(cls, common: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Self:
        return cls(**common, counts=arrays["counts"].astype(np.float64))


BASELINES: dict[str, type[Baseline]] = {
    GlobalMeanModel.KIND: GlobalMeanModel,
    BiasModel.KIND: BiasModel,
    PopularityModel.KIND: PopularityModel,
}
