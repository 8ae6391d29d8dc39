"""Stage `promote` on hand-made data with baseline models standing in for trained ones.

Data: user 1 rates everything 5, user 2 rates everything 1 (train mean 3). Test: both rate movie 12.
A global-mean model predicts 3 -> test rmse 2; an unregularized bias model predicts 5 and 1 -> rmse 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline import records, registry, tracking
from pipeline.cli import app
from pipeline.config import BiasParams, CofiParams, parse_params
from pipeline.errors import RecsysError
from pipeline.evaluation import metrics
from pipeline.models.base import Catalogue
from pipeline.models.baselines import BiasModel, GlobalMeanModel
from pipeline.models.cofi import CofiModel
from pipeline.models.loading import TRAINED_MODELS, model_class
from pipeline.paths import DEFAULT_LAYOUT as LAYOUT
from pipeline.split import split_ratings
from pipeline.stages import evaluate
from pipeline.stages.inputs import dataset_identity
from pipeline.stages.promote import gate_metric, run
from tests.factories import low_rank_ratings, training_data
from tests.servers import HOST, free_port

PROMOTION = LAYOUT.promotion  # relative: the tests run in a temporary folder, as the CLI does at the root
EXPERIMENT = "promote-test"
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "f00d"}
COFI = registry.registered_name("cofi", "synthetic")
MOVIES = pd.DataFrame({"movie_id": [10, 11, 12, 13], "title": ["a", "b", "c", "d"], "year": pd.array([None] * 4, "Int64"), "genres": ""})


def params(**promote) -> object:
    return parse_params({"promote": promote, "evaluate": {"k": 1}, "mlflow": {"experiment": EXPERIMENT}})


def frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    return out.astype({"user_id": "int64", "movie_id": "int64", "rating": "float64"}).assign(timestamp=0)


TRAIN = frame([(1, 10, 5.0), (1, 11, 5.0), (2, 10, 1.0), (2, 11, 1.0)])
TEST = frame([(1, 12, 5.0), (2, 12, 1.0)])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for folder in (LAYOUT.raw, LAYOUT.split, LAYOUT.metrics, LAYOUT.records):
        folder.mkdir(parents=True)
    LAYOUT.raw_meta.write_text(json.dumps(DATASET))
    TRAIN.to_parquet(LAYOUT.train, index=False)
    TEST.to_parquet(LAYOUT.test, index=False)
    return tmp_path


def global_mean(train: pd.DataFrame = TRAIN) -> GlobalMeanModel:
    return GlobalMeanModel.fit(training_data(train, MOVIES))


def bias() -> BiasModel:
    return BiasModel.fit(training_data(TRAIN, MOVIES), BiasParams(reg_user=0.0, reg_movie=0.0))


def dataset(**changes) -> dict:
    """Write data/raw/dataset.json: DATASET with `changes` (e.g. another source or fingerprint)."""
    meta = {**DATASET, **changes}
    LAYOUT.raw_meta.write_text(json.dumps(meta))
    return meta


def trained(name: str, model, status: str = "FINISHED", **info) -> str:
    """Log `model` in a training run of `name` and write records/train_<name>.json as the training
    stages do (with the current dataset.json's fingerprint and source); returns the model URI."""
    meta = json.loads(LAYOUT.raw_meta.read_text())
    with tracking.start_run(name, EXPERIMENT, name, meta) as run_id:
        uri = tracking.log_model(model, name)
    if status != "FINISHED":
        MlflowClient().set_terminated(run_id, status)
    record = {"mlflow_run_id": run_id, "model_uri": uri, **dataset_identity(meta), **info}
    LAYOUT.training_record(name).write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    return uri


def evaluated(**results: dict) -> None:
    """metrics/evaluation.json and its record, as the evaluate stage writes them."""
    records.write(LAYOUT.evaluation, LAYOUT.record_of(LAYOUT.evaluation), results)


def promotion() -> dict:
    """metrics/promotion.json and records/promotion.json, joined."""
    return records.read(PROMOTION, LAYOUT.record_of(PROMOTION))


def alias(name: str, which: str = "champion") -> int:
    return int(MlflowClient().get_model_version_by_alias(name, which).version)


def test_the_first_model_becomes_champion_and_its_version_is_tagged(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0, "mae": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert entry == {
        "registered_model": "recsys-cofi-synthetic",
        "data_source": "synthetic",
        "version": 1,
        "metric": "rmse",
        "challenger_score": 2.0,
        "champion_version": None,
        "champion_score": None,
        "decision": "first",
        "reason": entry["reason"],
        "champion_after": 1,
        "promoted": 1,
    }
    assert json.loads(PROMOTION.read_text()) == {"cofi": {"challenger_score": 2.0, "promoted": 1}}  # numbers only
    assert entry["reason"] == "no champion yet: this version becomes champion (rmse 2.0000)"
    assert alias(COFI) == alias(COFI, "challenger") == 1
    version = MlflowClient().get_model_version(COFI, "1")
    assert version.tags == {"dataset_fingerprint": "f00d", "data_source": "synthetic", "promotion_decision": "first"}
    assert version.description == (
        f"cofi, run {version.run_id}\n"
        "data: synthetic (fingerprint f00d), random split: 4 train / 2 test ratings\n"
        "test: RMSE 2.0000, MAE 2.0000\n"
        "decision: promoted to champion: no champion yet: this version becomes champion (rmse 2.0000)"
    )


def test_a_better_challenger_takes_over_a_worse_one_does_not(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])

    trained("cofi", bias())
    evaluated(cofi={"rmse": 0.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    # the champion (global mean, v1) is scored again on this split: predicts 3 against 5 and 1
    assert (entry["decision"], entry["champion_version"], entry["champion_score"]) == ("promoted", 1, 2.0)
    assert (entry["version"], entry["champion_after"], alias(COFI)) == (2, 2, 2)

    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert (entry["decision"], entry["champion_score"], entry["champion_after"]) == ("kept", 0.0, 2)
    assert "not better" in entry["reason"]
    assert (alias(COFI), alias(COFI, "challenger")) == (2, 3)
    version = MlflowClient().get_model_version(COFI, "3")
    assert (version.tags["promotion_decision"], version.tags["compared_with_version"]) == ("kept", "2")
    assert version.description.endswith("decision: not promoted: rmse 2.0000 vs champion v2 0.0000 on this test split: not better")


def test_a_champion_of_the_same_source_trained_on_other_data_is_scored_again_on_this_split(workdir):
    # the champion was trained on an earlier synthetic dataset: other ratings, movies 500 and 501 only
    other = frame([(100, 500, 4.5), (101, 501, 4.5)])
    other_movies = pd.DataFrame({"movie_id": [500, 501], "title": ["x", "y"], "year": pd.array([None] * 2, "Int64"), "genres": ""})
    dataset(fingerprint="0ld")
    trained("cofi", GlobalMeanModel.fit(training_data(other, other_movies)))
    evaluated(cofi={"rmse": 0.1})  # its number on the old data: never reused
    run(params(), ["cofi"])

    dataset()  # same source, new data (fingerprint f00d)
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    # the old model predicts its own mean 4.5 for unknown users: errors 0.5 and 3.5 -> rmse 2.5
    assert (entry["registered_model"], entry["champion_version"]) == (COFI, 1)
    assert entry["champion_score"] == pytest.approx(2.5)
    assert entry["decision"] == "promoted" and alias(COFI) == 2


def test_each_data_source_keeps_its_own_champion_and_never_scores_another_sources(workdir, monkeypatch):
    loaded: list[str] = []
    load_model = tracking.load_model
    monkeypatch.setattr(tracking, "load_model", lambda uri: loaded.append(uri) or load_model(uri))
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])

    # a real MovieLens run: other users and movies, its own test split
    dataset(source="ml-latest-small", fingerprint="beef")
    frame([(7, 70, 4.0), (7, 71, 3.0), (8, 70, 2.0)]).to_parquet(LAYOUT.train, index=False)
    frame([(7, 72, 4.0), (8, 72, 2.0)]).to_parquet(LAYOUT.test, index=False)
    trained("cofi", bias())
    evaluated(cofi={"rmse": 0.9})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    real = registry.registered_name("cofi", "ml-latest-small")
    assert (entry["registered_model"], entry["data_source"], entry["version"]) == ("recsys-cofi-ml-latest-small", "ml-latest-small", 1)
    assert (entry["decision"], entry["champion_version"], entry["champion_score"]) == ("first", None, None)
    assert "not compared with recsys-cofi-synthetic v1: trained on another data source" in entry["reason"]
    assert loaded == []  # the synthetic champion was not even loaded
    assert (alias(COFI), alias(COFI, "challenger"), alias(real)) == (1, 1, 1)

    # back on synthetic data: the synthetic champion is the one compared, the real one is untouched
    dataset()
    TRAIN.to_parquet(LAYOUT.train, index=False)
    TEST.to_parquet(LAYOUT.test, index=False)
    trained("cofi", bias())
    evaluated(cofi={"rmse": 0.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert (entry["registered_model"], entry["champion_version"], entry["champion_score"]) == (COFI, 1, 2.0)
    assert entry["decision"] == "promoted"
    assert loaded == [f"models:/{COFI}/1"]
    assert (alias(COFI), alias(real)) == (2, 1)


def test_promote_scores_the_champion_with_the_evaluate_stages_numbers(workdir):
    """The champion's score computed by promote equals what the evaluate stage wrote for the same model and split."""
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    train, test = split_ratings(ratings, "random", 0.3, 0)
    train.to_parquet(LAYOUT.train, index=False)
    test.to_parquet(LAYOUT.test, index=False)
    movies.to_parquet(LAYOUT.raw_movies, index=False)
    model = CofiModel.fit(training_data(train, movies), CofiParams(num_features=3, iterations=5))
    model.save(LAYOUT.model_dir("cofi"))
    trained("cofi", model)
    stage = parse_params({"evaluate": {"k": 3}, "mlflow": {"experiment": EXPERIMENT}})
    evaluate.run(stage, LAYOUT, trained={"cofi": "pipeline.models.cofi:CofiModel"})  # rmse and the ranked lists (ranking params)
    written = json.loads(LAYOUT.evaluation.read_text())["cofi"]
    run(stage, ["cofi"])  # v1 becomes champion
    for metric in ("rmse", "ndcg_at_k", "map_at_k"):
        judged = parse_params({"promote": {"metric": metric}, "evaluate": {"k": 3}, "mlflow": {"experiment": EXPERIMENT}})
        trained("cofi", model)  # the same model again: a new version, judged against champion v1
        run(judged, ["cofi"])
        entry = promotion()["cofi"]
        assert entry["champion_version"] == 1 and entry["version"] > 1
        assert entry["champion_score"] == written[metric], metric
        assert entry["decision"] == "kept"  # the same numbers: a tie keeps the champion


def test_a_change_to_the_evaluation_protocol_reaches_promote_too(workdir, monkeypatch):
    """One protocol: promote scores a registered model with the evaluate stage's function, so a change
    to it (here a relevance threshold one star lower) moves both numbers alike."""
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    train, test = split_ratings(ratings, "random", 0.3, 0)
    model = CofiModel.fit(training_data(train, movies), CofiParams(num_features=3, iterations=5))
    loaded = tracking.load_model(trained("cofi", model))
    stage = parse_params({"evaluate": {"k": 3}})

    def evaluate_and_promote() -> tuple[float, float]:
        evaluation, _, _ = evaluate.evaluate_all({"cofi": model}, train, test, Catalogue.from_movies(movies), stage)
        return evaluation["cofi"]["ndcg_at_k"], registry.score(loaded, "ndcg_at_k", train, test, stage.evaluate)

    before = evaluate_and_promote()
    relevant_items = metrics.relevant_items
    monkeypatch.setattr(metrics, "relevant_items", lambda test, threshold: relevant_items(test, threshold - 1.0))
    after = evaluate_and_promote()
    assert before[0] == before[1] and after[0] == after[1]
    assert after[0] != before[0]


def test_running_promote_again_on_the_same_model_registers_nothing_new(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    first = MlflowClient().get_model_version(COFI, "1")
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert (entry["decision"], entry["version"], entry["champion_after"]) == ("unchanged", 1, 1)
    assert len(MlflowClient().search_model_versions(f"name = '{COFI}'")) == 1
    again = MlflowClient().get_model_version(COFI, "1")  # it keeps the record of how it became champion
    assert (again.description, again.tags) == (first.description, first.tags)


@pytest.mark.parametrize(
    ("evaluation", "info", "status", "words"),
    [
        ({"cofi": {"mae": 2.0}}, {}, "FINISHED", "metrics/evaluation.json: 'cofi' has no 'rmse'"),
        ({}, {}, "FINISHED", "no entry for 'cofi' (its evaluation failed or did not run)"),
        ({"cofi": {"rmse": 2.0}}, {"model_uri": None}, "FINISHED", "records/train_cofi.json: no 'model_uri'"),
        ({"cofi": {"rmse": 2.0}}, {"dataset_fingerprint": "beef"}, "FINISHED", "the cofi model was trained on another dataset"),
        ({"cofi": {"rmse": 2.0}}, {}, "FAILED", "is FAILED, not FINISHED"),
    ],
)
def test_the_gate_refuses_with_a_reason_and_registers_nothing(workdir, evaluation, info, status, words):
    trained("cofi", global_mean(), status=status, **info)
    trained("content", global_mean())
    evaluated(**evaluation, content={"rmse": 2.0})
    run(params(), ["cofi", "content"])
    result = promotion()
    assert result["cofi"]["decision"] == "refused" and words in result["cofi"]["reason"]
    assert result["cofi"]["version"] is None and result["cofi"]["champion_after"] is None
    assert MlflowClient().search_model_versions(f"name = '{COFI}'") == []
    assert result["content"]["decision"] == "first"


@pytest.mark.parametrize("name", list(TRAINED_MODELS))
def test_a_model_whose_training_dataset_is_not_recorded_is_refused(workdir, name):
    for model in TRAINED_MODELS:
        trained(model, global_mean(), **({"dataset_fingerprint": None} if model == name else {}))
    evaluated(**{model: {"rmse": 2.0, "ndcg_at_k": 0.5} for model in TRAINED_MODELS})
    run(params(), list(TRAINED_MODELS))
    result = promotion()
    assert result[name]["decision"] == "refused" and result[name]["version"] is None
    assert result[name]["reason"].startswith(f"records/train_{name}.json: no 'dataset_fingerprint'")
    assert f"retrain it (dvc repro --force train_{name}); not registering it" in result[name]["reason"]
    assert all(result[model]["decision"] == "first" for model in TRAINED_MODELS if model != name)


def test_missing_inputs_are_a_data_error_naming_the_file(workdir):
    trained("cofi", global_mean())
    with pytest.raises(RecsysError, match="metrics/evaluation.json: not found; run the evaluate stage first"):
        run(params(), ["cofi"])
    assert not PROMOTION.exists()


def test_an_unreachable_tracking_server_fails_at_once_naming_it_and_writes_nothing(workdir, monkeypatch):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    uri = f"http://{HOST}:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    Path("params.yaml").write_text(f"mlflow:\n  experiment: {EXPERIMENT}\n")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["promote"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert f"error: promote: MLflow tracking server {uri} does not answer" in result.output
    assert "nothing registered, no alias moved" in result.output
    assert not PROMOTION.exists()


def test_a_server_failing_while_judging_moves_no_champion_and_writes_nothing(workdir, monkeypatch):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    before = promotion()
    trained("cofi", bias())
    evaluated(cofi={"rmse": 0.0})

    def dead(*args, **kwargs):
        raise MlflowException("API request to endpoint /api/2.0/mlflow/model-versions failed: Connection refused")

    monkeypatch.setattr(registry, "alias_version", dead)
    with pytest.raises(
        RecsysError,
        match=r"promote: MLflow at sqlite:///.* failed \(API request .* Connection refused\); "
        r"no champion alias moved; metrics/promotion.json and records/promotion.json not written",
    ):
        run(params(), ["cofi"])
    assert promotion() == before and alias(COFI) == 1


def test_a_failure_between_two_alias_moves_says_which_moved(workdir, monkeypatch):
    trained("cofi", global_mean())
    trained("content", global_mean())
    evaluated(cofi={"rmse": 2.0}, content={"rmse": 2.0})
    original = MlflowClient.set_registered_model_alias

    def fail_for_content(self, name, alias_name, version):
        if name == registry.registered_name("content", "synthetic") and alias_name == "champion":
            raise MlflowException("connection reset")
        return original(self, name, alias_name, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fail_for_content)
    with pytest.raises(RecsysError, match=f"champion moved only for {COFI};"):
        run(params(), ["cofi", "content"])
    assert not PROMOTION.exists()


def ranking_model():
    from pipeline.config import CofiRankingParams
    from pipeline.models.cofi_ranking import CofiRankingModel

    return CofiRankingModel.fit(training_data(TRAIN, MOVIES), CofiRankingParams(num_features=2, iterations=2, positive_threshold=None))


def test_a_ranking_model_has_its_own_champion_judged_by_the_ranking_metric(workdir):
    trained("cofi_ranking", ranking_model())
    evaluated(cofi_ranking={"ndcg_at_k": 0.5, "precision_at_k": 0.5})
    run(params(), ["cofi_ranking"])
    entry = promotion()["cofi_ranking"]
    assert (entry["registered_model"], entry["metric"], entry["decision"]) == ("recsys-cofi_ranking-synthetic", "ndcg_at_k", "first")

    trained("cofi_ranking", ranking_model())
    evaluated(cofi_ranking={"ndcg_at_k": 0.0})
    run(params(), ["cofi_ranking"])
    entry = promotion()["cofi_ranking"]
    # the champion is ranked again on this split: user 1's one relevant movie at rank 1 or not at all
    assert entry["metric"] == "ndcg_at_k" and entry["champion_score"] in (0.0, 1.0)
    assert entry["decision"] == "kept"

    trained("cofi_ranking", ranking_model())
    evaluated(cofi_ranking={"ndcg_at_k": 0.5})
    run(params(ranking_metric="precision_at_k"), ["cofi_ranking"])
    assert promotion()["cofi_ranking"]["metric"] == "precision_at_k"


def test_a_skipped_evaluation_row_is_refused_with_its_reason(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"skipped": "too many movies"})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert entry["decision"] == "refused" and "skipped (too many movies)" in entry["reason"]


@pytest.mark.parametrize("name", sorted(TRAINED_MODELS))
def test_the_gate_metric_follows_the_models_objective_without_importing_it(name: str):
    stage = params(metric="mae", ranking_metric="recall_at_k")
    assert gate_metric(name, stage) == ("mae" if model_class(name).predicts_ratings else "recall_at_k")
