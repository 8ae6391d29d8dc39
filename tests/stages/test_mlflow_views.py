"""train_cofi, train_cofi_ranking, evaluate and promote on tiny data inside a git repository under
`dvc exp run`'s environment, then everything the MLflow UI and `recsys compare` show, read back
through MlflowClient: run names, tags, input datasets, params, metric names, registry versions."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import registry
from pipeline.config import parse_params
from pipeline.evaluation.compare import WIDTH, as_json, compare_runs, render
from pipeline.split import split_ratings
from pipeline.stages import evaluate, promote, train_cofi, train_cofi_ranking
from tests.factories import layout_with, low_rank_ratings
from tests.stages.mlflow_views import PREFIXES, SHARED, check_training_run, inputs
from tests.test_tracking import git_repository

EXPERIMENT = "views-test"
DATASET = {"source": "files", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "d1ce" * 16}
PARAMS = parse_params(
    {
        "cofi": {"num_features": 3, "iterations": 5},
        "cofi_ranking": {"num_features": 3, "iterations": 3, "positive_threshold": None},
        "evaluate": {"k": 3, "cold_threshold": 2, "plot_sample": 5},
        "mlflow": {"experiment": EXPERIMENT},
    }
)
MODELS = ["cofi", "cofi_ranking"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The stages run once for the module, into a store of its own: the workspace is a git
    repository and DVC_EXP_NAME is set, as under `dvc exp run`."""
    root = tmp_path_factory.mktemp("views")
    commit = git_repository(root)
    ratings, movies = low_rank_ratings(n_users=12, n_movies=15)
    train, test = split_ratings(ratings, "random", 0.25, 0)
    layout = layout_with(root, train=train, test=test, movies=movies, dataset=DATASET)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("DVC_EXP_NAME", "brisk-hare")
        trained = {
            name: stage.train(stage.SPEC, PARAMS, layout) for name, stage in (("cofi", train_cofi), ("cofi_ranking", train_cofi_ranking))
        }
        evaluate.run(PARAMS, layout, trained={name: evaluate.TRAINED_MODELS[name] for name in MODELS})
        promote.run(PARAMS, MODELS, layout)
    return {"uri": uri, "commit": commit, "trained": trained, "train": train, "test": test, "layout": layout}


@pytest.fixture
def pipeline(stages: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stages["uri"])
    mlflow.set_tracking_uri(stages["uri"])
    return stages


def test_training_runs_say_family_objective_and_source_with_shared_params_and_both_splits(pipeline):
    client = MlflowClient()
    shared = {}
    for name, (family, objective) in {"cofi": ("cofi", "rating"), "cofi_ranking": ("cofi", "ranking")}.items():
        run_id = pipeline["trained"][name]["mlflow_run_id"]
        shared[name] = check_training_run(run_id, name, family, objective, pipeline["train"], DATASET)
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.source.git.commit"] == pipeline["commit"] and run.data.tags["dvc_experiment"] == "brisk-hare"
        testing = inputs(run)["testing"]  # logged by evaluate
        assert testing["name"] == "files/random/test" and testing["profile"]["num_rows"] == len(pipeline["test"])
        settings = {key: run.data.params[f"evaluate.{key}"] for key in ("k", "relevance_threshold", "cold_threshold")}
        assert settings == {"k": "3", "relevance_threshold": "4.0", "cold_threshold": "2"}
        assert "test_rmse" in run.data.metrics or objective == "ranking"
        assert "test_ndcg_at_k" in run.data.metrics and not [k for k in run.data.metrics if not k.startswith(PREFIXES)]
        assert shared[name]["parameter_count"] == str(pipeline["trained"][name]["parameter_count"])
    assert shared["cofi"].keys() == shared["cofi_ranking"].keys() == set(SHARED)
    assert (shared["cofi"]["learning_rate"], shared["cofi_ranking"]["learning_rate"]) == ("0.1", "als")


def test_baseline_runs_carry_the_same_identity(pipeline):
    runs = {run.info.run_name: run for run in MlflowClient().search_runs([MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id])}
    assert {"bias-rating@files", "popularity-ranking@files", "ease-ranking@files"} <= runs.keys()
    ease = runs["ease-ranking@files"]
    assert set(inputs(ease)) == {"training", "testing"} and ease.data.tags["dvc_experiment"] == "brisk-hare"
    assert (ease.data.params["family"], ease.data.params["objective"], ease.data.params["split_strategy"]) == ("ease", "ranking", "random")


def test_each_registered_version_has_a_description_and_a_few_tags(pipeline):
    client = MlflowClient()
    evaluation = json.loads(pipeline["layout"].evaluation.read_text())
    for name, run_name in (("cofi", "cofi-rating@files"), ("cofi_ranking", "cofi-ranking@files")):
        version = client.get_model_version(registry.registered_name(name, "files"), "1")
        assert version.tags == {"data_source": "files", "dataset_fingerprint": DATASET["fingerprint"], "promotion_decision": "first"}
        lines = version.description.splitlines()
        assert lines[0] == f"{run_name}, run {pipeline['trained'][name]['mlflow_run_id']}"
        n_train, n_test = len(pipeline["train"]), len(pipeline["test"])
        assert lines[1] == f"data: files (fingerprint d1ced1ced1ce), random split: {n_train} train / {n_test} test ratings"
        assert f"nDCG@3 {evaluation[name]['ndcg_at_k']:.4f}" in lines[2]
        assert lines[3].startswith("decision: promoted to champion: no champion yet")
    assert "RMSE" in client.get_model_version("recsys-cofi-files", "1").description
    assert "RMSE" not in client.get_model_version("recsys-cofi_ranking-files", "1").description


def test_compare_groups_the_runs_in_120_columns_and_as_json(pipeline):
    (group,) = compare_runs(EXPERIMENT, by="ndcg_at_k", source="files", split="random")
    assert len(group.table) == 2 + 5
    assert group.params == ["learning_rate", "epochs", "regularization", "parameter_count"]  # both have latent_size 3
    text = render([group], by="ndcg_at_k")
    assert max(map(len, text.splitlines())) <= WIDTH and "files, random split: 7 runs" in text
    document = json.loads(as_json([group], EXPERIMENT, by="ndcg_at_k"))
    runs = pd.DataFrame(document["groups"][0]["runs"]).set_index("run")
    assert runs.loc["cofi-ranking@files", "params"]["learning_rate"] == "als"
