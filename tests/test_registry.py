"""The promotion gate (pure), scoring a registered model on the current split, and the registry calls."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import registry, tracking
from pipeline.choices import SOURCES
from pipeline.config import EvaluateParams
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError
from pipeline.models.base import Catalogue
from pipeline.models.baselines import GlobalMeanModel
from pipeline.models.loading import TRAINED_MODELS
from pipeline.models.ranking import SupportRanking
from pipeline.registry import Refused, challenger_score, decide, improvement, score
from tests.factories import training_data


# ---- the gate -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "gain"),
    [("rmse", 0.9, 1.0, 0.1), ("mae", 1.2, 1.0, -0.2), ("ndcg_at_k", 0.3, 0.2, 0.1), ("map_at_k", 0.1, 0.25, -0.15)],
)
def test_improvement_is_positive_when_the_challenger_is_better(metric, challenger, champion, gain):
    assert improvement(metric, challenger, champion) == pytest.approx(gain)


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "min_improvement", "decision", "words"),
    [
        ("rmse", 0.90, 1.00, 0.05, "promoted", "better by 0.1 >= min_improvement 0.05"),
        ("rmse", 0.90, 1.00, 0.20, "kept", "better by only 0.1 < min_improvement 0.2"),
        ("rmse", 1.00, 1.00, 0.0, "kept", "not better"),
        ("rmse", 1.10, 1.00, 0.0, "kept", "not better"),
        ("ndcg_at_k", 0.30, 0.20, 0.0, "promoted", "ndcg_at_k 0.3000 vs champion v7 0.2000"),
        ("ndcg_at_k", 0.20, 0.30, 0.0, "kept", "not better"),
    ],
)
def test_decide_moves_the_champion_only_when_better_by_the_margin(metric, challenger, champion, min_improvement, decision, words):
    made = decide(metric, challenger, champion, min_improvement, champion_version=7)
    assert made.decision == decision
    assert words in made.reason
    assert made.moves_champion == (decision == "promoted")


def test_the_first_model_becomes_champion():
    made = decide("rmse", 0.95, None, 0.5)
    assert made.decision == "first" and made.moves_champion
    assert "no champion yet" in made.reason


@pytest.mark.parametrize(
    ("evaluation", "words"),
    [
        ({}, "no entry for 'cofi'"),
        ({"cofi": "broken"}, "no entry for 'cofi'"),
        ({"cofi": {"mae": 0.7}}, "'cofi' has no 'rmse'"),
        ({"cofi": {"rmse": None}}, "'cofi' has no 'rmse'"),
        ({"cofi": {"rmse": "n/a"}}, "rmse is not a number ('n/a')"),
        ({"cofi": {"rmse": float("nan")}}, "rmse is nan"),
    ],
)
def test_a_missing_or_unusable_metric_refuses_with_a_reason(evaluation, words):
    with pytest.raises(Refused, match="not registering it") as caught:
        challenger_score(evaluation, "cofi", "rmse", "metrics/evaluation.json")
    assert words in str(caught.value)
    assert str(caught.value).startswith("metrics/evaluation.json: ")


def test_challenger_score_reads_the_metric():
    assert challenger_score({"cofi": {"rmse": 0.87, "mae": 0.66}}, "cofi", "mae") == 0.66


def test_one_registered_name_per_model_and_data_source():
    assert registry.registered_name("cofi", "synthetic") == "recsys-cofi-synthetic"
    assert registry.registered_name("cofi_ranking", "ml-latest-small") == "recsys-cofi_ranking-ml-latest-small"
    assert registry.model_alias_uri("content", "ml-1m") == "models:/recsys-content-ml-1m@champion"
    assert registry.model_alias_uri("content", "ml-1m", "challenger") == "models:/recsys-content-ml-1m@challenger"
    assert registry.source_slug("My Ratings (2024)") == "my-ratings-2024"
    names = {registry.registered_name(model, source) for model in TRAINED_MODELS for source in SOURCES}
    assert len(names) == len(TRAINED_MODELS) * len(SOURCES)  # no two (model, source) pairs share a champion
    with pytest.raises(DataError, match="data source '--' has no letter or digit"):
        registry.registered_name("cofi", "--")


# ---- scoring on the current split -------------------------------------------------------------
class FakeModel:
    """A ranking model with fixed score rows per user (for hand-worked metrics)."""

    predicts_ratings = True

    def __init__(self, movie_ids: list[int], rows: dict[int, list[float]], predictions: list[float] | None = None):
        self.catalogue = Catalogue(np.array(movie_ids, np.int64), np.array([f"m{m}" for m in movie_ids]))
        self.rows, self.predictions = rows, predictions

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return np.array([self.rows[int(u)] for u in users], dtype=np.float64)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        return np.array(self.predictions, dtype=np.float64)

    def with_ranking(self, ranking: object) -> FakeModel:
        return self


class FakePyfunc:
    """What mlflow.pyfunc.load_model returns for a model logged by tracking.log_model."""

    def __init__(self, model: FakeModel):
        self.wrapper = tracking.RecsysPyfunc()
        self.wrapper.model = model

    def unwrap_python_model(self) -> tracking.RecsysPyfunc:
        return self.wrapper


def ratings(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[USER, MOVIE, RATING])
    return frame.astype({USER: "int64", MOVIE: "int64", RATING: "float64"}).assign(timestamp=np.int64(0))


TRAIN = ratings([(1, 10, 3.0), (2, 11, 3.0)])
# relevant (>= 4): user 1 -> movie 12, user 2 -> movie 13
TEST = ratings([(1, 12, 5.0), (1, 13, 2.0), (2, 13, 4.0)])
K1, K2 = EvaluateParams(k=1, relevance_threshold=4.0), EvaluateParams(k=2, relevance_threshold=4.0)


def test_rating_metrics_come_from_the_pyfunc_predictions():
    # errors: 4-5 = -1, 3-2 = 1, 4-4 = 0 -> rmse sqrt(2/3), mae 2/3
    model = FakePyfunc(FakeModel([10, 11, 12, 13], {}, predictions=[4.0, 3.0, 4.0]))
    assert score(model, "rmse", TRAIN, TEST, K1) == pytest.approx(math.sqrt(2 / 3))
    assert score(model, "mae", TRAIN, TEST, K1) == pytest.approx(2 / 3)


def test_ranking_metrics_follow_the_evaluate_protocol():
    # user 1 has seen 10: ranks 13 (3), 12 (2), 11 (1); user 2 has seen 11: ranks 13 (5), 12 (1), 10 (0)
    rows = {1: [9.0, 1.0, 2.0, 3.0], 2: [0.0, 9.0, 1.0, 5.0]}
    model = FakePyfunc(FakeModel([10, 11, 12, 13], rows))
    assert score(model, "precision_at_k", TRAIN, TEST, K1) == pytest.approx(0.5)
    # k=2: user 1 hits at rank 1 -> (1/log2 3) / 1; user 2 hits at rank 0 -> 1
    assert score(model, "ndcg_at_k", TRAIN, TEST, K2) == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert score(model, "recall_at_k", TRAIN, TEST, K2) == pytest.approx(1.0)
    assert score(model, "map_at_k", TRAIN, TEST, K2) == pytest.approx((0.5 + 1) / 2)


def test_ranking_metrics_rank_with_the_ranking_params_as_evaluate_does():
    class Adjustable(FakeModel, SupportRanking):
        def with_ranking(self, ranking):
            if ranking is None:
                return self
            # user 2 now prefers 12 over 13: a miss at k=1
            return FakeModel([10, 11, 12, 13], {**self.rows, 2: [0.0, 9.0, ranking, 1.0]})

    rows = {1: [9.0, 1.0, 2.0, 3.0], 2: [0.0, 9.0, 1.0, 5.0]}
    model = FakePyfunc(Adjustable([10, 11, 12, 13], rows))
    assert score(model, "precision_at_k", TRAIN, TEST, K1) == pytest.approx(0.5)
    assert score(model, "precision_at_k", TRAIN, TEST, K1, ranking=7.0) == pytest.approx(0.0)


def test_a_model_from_another_dataset_is_ranked_over_its_own_catalogue():
    # its catalogue lacks movie 11 (which user 2 rated in train): no error, user 2 has nothing excluded
    rows = {1: [9.0, 2.0, 3.0], 2: [0.0, 1.0, 5.0]}
    model = FakePyfunc(FakeModel([10, 12, 13], rows))
    assert score(model, "precision_at_k", TRAIN, TEST, K1) == pytest.approx(0.5)


def test_scoring_needs_a_recsys_pyfunc():
    class Opaque:
        def unwrap_python_model(self):
            return SimpleNamespace(model=FakeModel([10], {}))

    with pytest.raises(ModelError, match="wraps SimpleNamespace, not a recsys pyfunc"):
        score(Opaque(), "ndcg_at_k", TRAIN, TEST, K1)


# ---- registry calls (a temporary sqlite store) ------------------------------------------------
def logged_global_mean() -> tuple[str, str, GlobalMeanModel]:
    movies = pd.DataFrame({MOVIE: [10, 11, 12, 13], "title": ["a", "b", "c", "d"]})
    model = GlobalMeanModel.fit(training_data(TRAIN, movies.assign(year=pd.array([None] * 4, "Int64"), genres="")))
    with tracking.start_run("gm", "registry-test", "global_mean", {"fingerprint": "f"}) as run_id:
        uri = tracking.log_model(model, "gm")
    return uri, run_id, model


@pytest.fixture
def client(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns
    tracking.configure("registry-test")
    return MlflowClient()


def test_registering_the_same_logged_model_twice_reuses_its_version(client):
    uri, run_id, _model = logged_global_mean()
    first = registry.register(client, "recsys-test", uri, run_id, {"a": "1"})
    again = registry.register(client, "recsys-test", uri, run_id, {"b": "2"})
    assert (int(first.version), int(again.version)) == (1, 1)
    stored = client.get_model_version("recsys-test", "1")
    assert stored.tags == {"a": "1", "b": "2"}
    assert stored.source == uri and stored.run_id == run_id
    # another logged model is a new version
    other_uri, other_run, _ = logged_global_mean()
    assert int(registry.register(client, "recsys-test", other_uri, other_run, {}).version) == 2


def test_alias_version_is_none_for_a_missing_model_or_alias(client):
    assert registry.alias_version(client, "recsys-nothing", "champion") is None
    uri, run_id, _model = logged_global_mean()
    registry.register(client, "recsys-test", uri, run_id, {})
    assert registry.alias_version(client, "recsys-test", "champion") is None
    client.set_registered_model_alias("recsys-test", "champion", "1")
    assert int(registry.alias_version(client, "recsys-test", "champion").version) == 1


def test_a_registered_pyfunc_scores_like_the_model_itself(client):
    uri, run_id, model = logged_global_mean()
    registry.register(client, "recsys-test", uri, run_id, {})
    loaded = tracking.load_model("models:/recsys-test/1")
    # global mean 3.0 against 5, 2, 4
    assert score(loaded, "rmse", TRAIN, TEST, K1) == pytest.approx(math.sqrt((4 + 1 + 1) / 3))
    np.testing.assert_array_equal(loaded.predict(TEST[[USER, MOVIE]]), model.predict(TEST[[USER, MOVIE]]))
    assert registry.project_model(loaded).catalogue.movie_ids.tolist() == [10, 11, 12, 13]


def test_other_source_champions_are_those_of_the_same_model_on_other_sources(client):
    uri, run_id, _ = logged_global_mean()
    for name in ("recsys-cofi-synthetic", "recsys-cofi-ml-1m", "recsys-cofi-ml-100k", "recsys-content-ml-100k"):
        registry.register(client, name, uri, run_id, {})
    for name in ("recsys-cofi-synthetic", "recsys-cofi-ml-1m", "recsys-content-ml-100k"):  # recsys-cofi-ml-100k: none
        client.set_registered_model_alias(name, "champion", "1")
    assert registry.other_source_champions(client, "cofi", "ml-1m") == ["recsys-cofi-synthetic v1"]
    assert registry.other_source_champions(client, "cofi", "ml-25m") == ["recsys-cofi-ml-1m v1", "recsys-cofi-synthetic v1"]
    assert registry.other_source_champions(client, "content", "ml-100k") == []
