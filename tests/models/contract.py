"""The model contract (pipeline.models.base.Recommender) as one test suite that every model's test
class inherits.

    class TestCofiContract(ModelContract):
        @pytest.fixture(scope="class")
        def fit(self): return lambda: CofiModel.fit(...)   # same seed every call
        @pytest.fixture(scope="class")
        def model(self, fit): return fit()
        # train (ratings frame the model was fitted on) and movies fixtures likewise

Override `scale` for datasets on another rating scale, and `predicts_ratings = False` for a
ranking-only model (popularity).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import RankingParams
from pipeline.data.schema import MOVIE, TITLE, USER, RatingScale
from pipeline.errors import DataError, RecsysError
from pipeline.models.base import Catalogue, Recommender, SeenItems
from pipeline.models.ranking import adjust_scores

UNKNOWN_ID = 987_654_321
RECOMMENDER_METHODS = ("fit", "predict", "score_block", "recommend", "top_list", "with_ranking", "save", "load")


def assert_signature_extends(method, protocol_method, name: str) -> None:
    """`method` takes the protocol's parameters (same names and kinds, the protocol's defaults kept;
    annotations aside), then only keyword-only parameters with defaults."""
    wanted = list(inspect.signature(protocol_method).parameters.values())
    got = list(inspect.signature(method).parameters.values())
    assert [(p.name, p.kind) for p in got[: len(wanted)]] == [(p.name, p.kind) for p in wanted], f"{name}{inspect.signature(method)}"
    kept = [p.default == w.default for p, w in zip(got, wanted, strict=False) if w.default is not w.empty]
    assert all(kept), f"{name}{inspect.signature(method)}: the protocol's defaults are {inspect.signature(protocol_method)}"
    extras = got[len(wanted) :]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extras), f"{name}: extra parameters {extras}"


class ModelContract:
    scale: RatingScale = RatingScale(0.5, 5.0, 0.5)
    predicts_ratings: bool = True

    # ---- the protocol --------------------------------------------------------------------
    def test_the_model_follows_the_recommender_protocol(self, model):
        assert isinstance(model, Recommender)
        cls = type(model)
        for name in ("fit", "load"):
            assert isinstance(inspect.getattr_static(cls, name), classmethod), f"{name} must be a classmethod"
        for name in RECOMMENDER_METHODS:
            assert_signature_extends(getattr(cls, name), getattr(Recommender, name), name)
        assert isinstance(model.catalogue, Catalogue) and isinstance(model.seen, SeenItems)
        assert model.predicts_ratings is self.predicts_ratings

    def test_with_ranking_returns_a_ranked_copy_and_leaves_the_model_as_it_was(self, model, train):
        users = np.unique(train[USER].to_numpy())[:4]
        raw = model.score_block(users).copy()
        ranking = RankingParams(shrinkage=20.0, popularity_weight=0.5, min_support=0)
        ranked = model.with_ranking(ranking)
        assert type(ranked) is type(model) and ranked is not model
        np.testing.assert_array_equal(model.score_block(users), raw)
        support = np.bincount(model.seen.indices, minlength=len(model.catalogue))
        np.testing.assert_allclose(ranked.score_block(users), adjust_scores(raw, support, shrinkage=20.0, popularity_weight=0.5))
        np.testing.assert_array_equal(ranked.with_ranking(None).score_block(users), raw)

    # ---- predict -------------------------------------------------------------------------
    def test_predict_returns_one_finite_rating_per_row_inside_the_range(self, model, train):
        if not self.predicts_ratings:
            pytest.skip("ranking-only model")
        pairs = train[[USER, MOVIE]].head(200)
        predictions = model.predict(pairs)
        assert isinstance(predictions, np.ndarray)
        assert predictions.shape == (len(pairs),)
        assert np.issubdtype(predictions.dtype, np.floating)
        assert np.isfinite(predictions).all()
        low, high = self.scale.bounds
        assert predictions.min() >= low and predictions.max() <= high

    def test_predict_on_no_rows_returns_an_empty_array(self, model):
        if not self.predicts_ratings:
            pytest.skip("ranking-only model")
        empty = pd.DataFrame({USER: pd.Series([], dtype="int64"), MOVIE: pd.Series([], dtype="int64")})
        assert model.predict(empty).shape == (0,)

    def test_unknown_users_and_movies_get_a_finite_fallback_not_an_exception(self, model, train):
        if not self.predicts_ratings:
            pytest.skip("ranking-only model")
        known_user, known_movie = int(train[USER].iloc[0]), int(train[MOVIE].iloc[0])
        pairs = pd.DataFrame({USER: [UNKNOWN_ID, known_user, UNKNOWN_ID], MOVIE: [known_movie, UNKNOWN_ID, UNKNOWN_ID]})
        predictions = model.predict(pairs)
        low, high = self.scale.bounds
        assert np.isfinite(predictions).all()
        assert ((predictions >= low) & (predictions <= high)).all()

    def test_predict_without_the_id_columns_is_a_clear_data_error(self, model):
        if not self.predicts_ratings:
            pytest.skip("ranking-only model")
        with pytest.raises(DataError, match=MOVIE):
            model.predict(pd.DataFrame({USER: [1]}))

    # ---- recommend -----------------------------------------------------------------------
    def _some_user(self, train) -> int:
        counts = train[USER].value_counts()
        return int(counts.index[0])

    def test_recommend_lists_unseen_movies_best_first(self, model, train, movies):
        user = self._some_user(train)
        recs = model.recommend(user, n=5)
        assert list(recs.columns) == [MOVIE, TITLE, "score"]
        assert len(recs) == 5
        assert recs["score"].is_monotonic_decreasing
        seen = set(train.loc[train[USER] == user, MOVIE])
        assert not seen & set(recs[MOVIE])
        titles = movies.set_index(MOVIE)[TITLE]
        assert (titles.loc[recs[MOVIE]].to_numpy() == recs[TITLE].to_numpy()).all()

    def test_recommend_with_seen_movies_included_ranks_the_whole_catalogue(self, model, train):
        user = self._some_user(train)
        recs = model.recommend(user, n=7, exclude_seen=False)
        assert len(recs) == 7 and recs[MOVIE].is_unique

    def test_recommend_for_an_unknown_user_is_a_clear_error(self, model):
        with pytest.raises(RecsysError, match=str(UNKNOWN_ID)):
            model.recommend(UNKNOWN_ID, n=3)
        with pytest.raises(RecsysError, match=str(UNKNOWN_ID)):
            model.top_list(UNKNOWN_ID, n=3)

    @pytest.mark.parametrize("exclude_seen", [True, False])
    def test_top_list_is_recommends_list_as_arrays(self, model, train, exclude_seen):
        user = self._some_user(train)
        top = model.top_list(user, n=6, exclude_seen=exclude_seen)
        pd.testing.assert_frame_equal(top.frame(), model.recommend(user, n=6, exclude_seen=exclude_seen))
        assert top.movie_ids.dtype == np.int64 and top.scores.dtype == np.float64

    def test_recommend_and_score_block_give_the_same_ranking(self, model, train):
        user = self._some_user(train)
        scores = model.score_block(np.array([user], dtype=np.int64))
        assert scores.shape == (1, len(model.catalogue))
        seen = model.catalogue.index(train.loc[train[USER] == user, MOVIE].to_numpy())
        scores[0, seen] = -np.inf
        expected_top = model.catalogue.movie_ids[np.argsort(-scores[0], kind="stable")[:3]]
        assert list(model.recommend(user, n=3)[MOVIE]) == list(expected_top)

    # ---- persistence and determinism -----------------------------------------------------
    def test_save_then_load_gives_the_same_answers_without_pickle(self, model, train, tmp_path: Path):
        model.save(tmp_path)
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert files, "save() wrote nothing"
        assert not [p for p in files if p.suffix in {".pkl", ".pickle", ".joblib"}]
        for npz in tmp_path.rglob("*.npz"):
            with np.load(npz, allow_pickle=False) as arrays:
                for key in arrays.files:
                    arrays[key]  # raises if an entry needs pickle
        loaded = type(model).load(tmp_path)
        user = self._some_user(train)
        pd.testing.assert_frame_equal(loaded.recommend(user, n=5), model.recommend(user, n=5))
        if self.predicts_ratings:
            pairs = train[[USER, MOVIE]].head(50)
            np.testing.assert_allclose(loaded.predict(pairs), model.predict(pairs), rtol=1e-6, atol=1e-6)

    def test_the_same_seed_gives_the_same_model(self, fit, train):
        first, second = fit(), fit()
        user = self._some_user(train)
        if self.predicts_ratings:
            pairs = train[[USER, MOVIE]].head(100)
            np.testing.assert_array_equal(first.predict(pairs), second.predict(pairs))
        pd.testing.assert_frame_equal(first.recommend(user, n=5), second.recommend(user, n=5))
