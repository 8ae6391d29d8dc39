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

from pipeline import paths, registry, tracking
from pipeline.cli import app
from pipeline.config import BiasParams, parse_params
from pipeline.errors import RecsysError
from pipeline.models.baselines import BiasModel, GlobalMeanModel
from pipeline.stages.promote import PROMOTION, run
from tests.factories import training_data
from tests.servers import HOST, free_port

EXPERIMENT = "promote-test"
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "fingerprint": "f00d"}
MOVIES = pd.DataFrame(
    {"movie_id": [10, 11, 12, 13], "title": ["a", "b", "c", "d"], "year": pd.array([None] * 4, "Int64"), "genres": ""}
)


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
    for folder in (paths.RAW, paths.SPLIT, paths.METRICS):
        folder.mkdir(parents=True)
    paths.RAW_META.write_text(json.dumps(DATASET))
    TRAIN.to_parquet(paths.TRAIN, index=False)
    TEST.to_parquet(paths.TEST, index=False)
    return tmp_path


def global_mean(train: pd.DataFrame = TRAIN) -> GlobalMeanModel:
    return GlobalMeanModel.fit(training_data(train, MOVIES))


def bias() -> BiasModel:
    return BiasModel.fit(training_data(TRAIN, MOVIES), BiasParams(reg_user=0.0, reg_movie=0.0))


def trained(name: str, model, status: str = "FINISHED", **info) -> str:
    """Log `model` in a training run of `name` and write metrics/train_<name>.json; returns the model URI."""
    with tracking.start_run(name, EXPERIMENT, name, DATASET) as run_id:
        uri = tracking.log_model(model, name)
    if status != "FINISHED":
        MlflowClient().set_terminated(run_id, status)
    record = {"mlflow_run_id": run_id, "model_uri": uri, "dataset_fingerprint": DATASET["fingerprint"], **info}
    (paths.METRICS / f"train_{name}.json").write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    return uri


def evaluated(**results: dict) -> None:
    (paths.METRICS / "evaluation.json").write_text(json.dumps(results))


def promotion() -> dict:
    return json.loads(PROMOTION.read_text())


def alias(name: str, which: str = "champion") -> int:
    return int(MlflowClient().get_model_version_by_alias(name, which).version)


def test_the_first_model_becomes_champion_and_its_version_is_tagged(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0, "mae": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert entry == {
        "registered_model": "recsys-cofi", "version": 1, "metric": "rmse", "challenger_score": 2.0,
        "champion_version": None, "champion_score": None, "decision": "first", "reason": entry["reason"],
        "champion_after": 1,
    }
    assert "no champion yet" in entry["reason"]
    assert alias("recsys-cofi") == alias("recsys-cofi", "challenger") == 1
    tags = MlflowClient().get_model_version("recsys-cofi", "1").tags
    assert tags["dataset_fingerprint"] == "f00d" and tags["data_source"] == "synthetic"
    assert (tags["test_rmse"], tags["test_mae"], tags["promote_metric"]) == ("2", "2", "rmse")
    assert tags["promotion_decision"] == "first"


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
    assert (entry["version"], entry["champion_after"], alias("recsys-cofi")) == (2, 2, 2)

    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert (entry["decision"], entry["champion_score"], entry["champion_after"]) == ("kept", 0.0, 2)
    assert "not better" in entry["reason"]
    assert (alias("recsys-cofi"), alias("recsys-cofi", "challenger")) == (2, 3)
    tags = MlflowClient().get_model_version("recsys-cofi", "3").tags
    assert (tags["promotion_decision"], tags["champion_score"], tags["compared_with_version"]) == ("kept", "0", "2")


def test_a_champion_from_another_dataset_is_scored_on_the_current_split_not_on_its_old_numbers(workdir):
    other = frame([(100, 500, 4.5), (101, 501, 4.5)])
    other_movies = pd.DataFrame({"movie_id": [500, 501], "title": ["x", "y"], "year": pd.array([None] * 2, "Int64"), "genres": ""})
    old = GlobalMeanModel.fit(training_data(other, other_movies))
    with tracking.start_run("cofi", EXPERIMENT, "cofi", {"fingerprint": "old"}) as run_id:
        uri = tracking.log_model(old, "cofi")
    client = MlflowClient()
    client.create_registered_model("recsys-cofi")
    version = client.create_model_version("recsys-cofi", uri, run_id, tags={"test_rmse": "0.1", "dataset_fingerprint": "old"})
    client.set_registered_model_alias("recsys-cofi", "champion", version.version)

    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    # the old model predicts its own mean 4.5 for unknown users: errors 0.5 and 3.5 -> rmse 2.5
    assert entry["champion_score"] == pytest.approx(2.5)
    assert entry["decision"] == "promoted" and alias("recsys-cofi") == 2


def test_min_improvement_keeps_a_champion_that_is_only_slightly_worse(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    trained("cofi", bias())
    evaluated(cofi={"rmse": 1.9})
    run(params(min_improvement=0.5), ["cofi"])
    entry = promotion()["cofi"]
    assert entry["decision"] == "kept" and alias("recsys-cofi") == 1
    assert "better by only 0.1 < min_improvement 0.5" in entry["reason"]


def test_a_ranking_metric_scores_the_champion_with_the_evaluate_protocol(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"ndcg_at_k": 0.5})
    run(params(metric="ndcg_at_k"), ["cofi"])
    trained("cofi", bias())
    evaluated(cofi={"ndcg_at_k": 0.5})
    run(params(metric="ndcg_at_k"), ["cofi"])
    # only user 1 has a relevant test movie (12); unseen are 12 and 13, tied for the global mean,
    # and a tie goes to the lower id: 12 is first, a hit at k=1 -> nDCG 1
    entry = promotion()["cofi"]
    assert (entry["champion_score"], entry["decision"]) == (1.0, "kept")


def test_running_promote_again_on_the_same_model_registers_nothing_new(workdir):
    trained("cofi", global_mean())
    evaluated(cofi={"rmse": 2.0})
    run(params(), ["cofi"])
    run(params(), ["cofi"])
    entry = promotion()["cofi"]
    assert (entry["decision"], entry["version"], entry["champion_after"]) == ("unchanged", 1, 1)
    assert len(MlflowClient().search_model_versions("name = 'recsys-cofi'")) == 1


@pytest.mark.parametrize(
    ("evaluation", "info", "status", "words"),
    [
        ({"cofi": {"mae": 2.0}}, {}, "FINISHED", "metrics/evaluation.json: 'cofi' has no 'rmse'"),
        ({}, {}, "FINISHED", "no entry for 'cofi' (its evaluation failed or did not run)"),
        ({"cofi": {"rmse": 2.0}}, {"model_uri": None}, "FINISHED", "metrics/train_cofi.json: no 'model_uri'"),
        ({"cofi": {"rmse": 2.0}}, {"dataset_fingerprint": "beef"}, "FINISHED", "trained on another dataset"),
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
    assert MlflowClient().search_model_versions("name = 'recsys-cofi'") == []
    assert result["content"]["decision"] == "first"


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
    before = PROMOTION.read_text()
    trained("cofi", bias())
    evaluated(cofi={"rmse": 0.0})

    def dead(*args, **kwargs):
        raise MlflowException("API request to endpoint /api/2.0/mlflow/model-versions failed: Connection refused")

    monkeypatch.setattr(registry, "alias_version", dead)
    with pytest.raises(RecsysError, match=r"promote: MLflow at sqlite:///.* failed \(API request .* Connection refused\); "
                       r"no champion alias moved; metrics/promotion.json not written"):
        run(params(), ["cofi"])
    assert PROMOTION.read_text() == before and alias("recsys-cofi") == 1


def test_a_failure_between_two_alias_moves_says_which_moved(workdir, monkeypatch):
    trained("cofi", global_mean())
    trained("content", global_mean())
    evaluated(cofi={"rmse": 2.0}, content={"rmse": 2.0})
    original = MlflowClient.set_registered_model_alias

    def fail_for_content(self, name, alias_name, version):
        if name == "recsys-content" and alias_name == "champion":
            raise MlflowException("connection reset")
        return original(self, name, alias_name, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fail_for_content)
    with pytest.raises(RecsysError, match="champion moved only for recsys-cofi"):
        run(params(), ["cofi", "content"])
    assert not PROMOTION.exists()
