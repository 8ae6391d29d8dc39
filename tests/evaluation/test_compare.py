"""`recsys compare`: runs grouped by data source and split, best first, only the params that differ,
at most 120 columns or JSON; from hand-made frames and from a real MLflow store."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import tracking
from pipeline.cli import app
from pipeline.config import Params
from pipeline.errors import ConfigError
from pipeline.evaluation.compare import WIDTH, as_json, compare_runs, render, run_filter, summarize_runs
from pipeline.tracking import flatten

PARAMS = Params()
# (model, family, objective, its params section, shared hyperparameters, parameter_count)
TRAINED = [
    ("cofi", "cofi", "rating", PARAMS.cofi, (50, 0.1, 30, 0.15, 1234), 496_610),
    ("content", "content", "rating", PARAMS.content, (32, 0.01, 30, "none", 1), 161_216),
    ("cofi_ranking", "cofi", "ranking", PARAMS.cofi_ranking, (64, "als", 15, 0.02, 1234), 658_048),
    ("content_ranking", "content", "ranking", PARAMS.content_ranking, (32, 0.005, 10, "none", 1), 471_872),
]
BASELINES = [("bias", "rating"), ("global_mean", "rating"), ("popularity", "ranking"), ("ease", "ranking"), ("genre_affinity", "ranking")]
HYPER = ("latent_size", "learning_rate", "epochs", "regularization", "seed")


def logged_run(model: str, family: str, objective: str, source: str, split: str, params: dict, metrics: dict, minute: int) -> dict:
    """One row of mlflow.search_runs as the pipeline's runs fill it."""
    identity = {"family": family, "objective": objective, "data_source": source, "split_strategy": split}
    return {
        "run_id": f"{minute:02d}" + "e3b0c44298fc1c149afbf4c8996fb9"[: 32 - 2],
        "start_time": pd.Timestamp("2026-01-05 10:00") + pd.Timedelta(minutes=minute),
        "tags.mlflow.runName": f"{family}-{objective}@{source}",
        "tags.model": model,
        "tags.model_family": family,
        "tags.data_source": source,
        "tags.dataset_fingerprint": "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff",
        **{f"params.{k}": v for k, v in flatten({**identity, **params}).items()},
        **{f"metrics.test_{k}": v for k, v in metrics.items()},
    }


def pipeline_runs(source: str = "ml-latest-small", split: str = "random", start: int = 0) -> list[dict]:
    """The nine runs of one pipeline run: four trained models, five baselines."""
    settings = {"evaluate": {"k": 10, "relevance_threshold": 4.0, "cold_threshold": 5}}
    sizes = {"n_users": 610, "n_movies": 9724, "n_train_ratings": 80668}
    rows = []
    for minute, (model, family, objective, section, hyper, count) in enumerate(TRAINED, start):
        params = {model: section.model_dump(), **dict(zip(HYPER, hyper, strict=True)), "parameter_count": count, **sizes, **settings}
        rating = {"rmse": 0.86 + minute / 1000, "mae": 0.66, "cold_rmse": 1.0, "cold_mae": 0.8} if objective == "rating" else {}
        metrics = {**rating, "ndcg_at_k": 0.17 + minute / 100, "precision_at_k": 0.13, "recall_at_k": 0.1, "map_at_k": 0.09}
        rows.append(logged_run(model, family, objective, source, split, params, {**metrics, "coverage": 0.05}, minute))
    for minute, (model, objective) in enumerate(BASELINES, start + len(TRAINED)):
        params = {"evaluate": {**settings["evaluate"], "plot_sample": 2000, "seed": 0}}
        rating = {"rmse": 0.8824, "mae": 0.6768} if objective == "rating" else {}
        rows.append(logged_run(model, model, objective, source, split, params, {**rating, "ndcg_at_k": 0.09, "coverage": 0.01}, minute))
    return rows


def frame(*rows: list[dict]) -> pd.DataFrame:
    """Newest first, as tracking.search_runs returns them."""
    runs = pd.DataFrame([row for group in rows for row in group])
    return runs.sort_values("start_time", ascending=False, ignore_index=True)


def test_runs_are_grouped_by_source_and_split_and_sorted_best_first_with_missing_metrics_last():
    runs = frame(pipeline_runs(), pipeline_runs("synthetic", "temporal", start=20))
    groups = summarize_runs(runs, by="rmse")
    assert [(g.data_source, g.split) for g in groups] == [("synthetic", "temporal"), ("ml-latest-small", "random")]
    names = ["cofi-rating", "content-rating", "global_mean-rating", "bias-rating"]  # bias and global mean tie: newest first
    names += ["genre_affinity-ranking", "ease-ranking", "popularity-ranking", "content-ranking", "cofi-ranking"]  # no RMSE
    assert groups[1].table["run"].tolist() == [f"{name}@ml-latest-small" for name in names]
    by_ndcg = summarize_runs(runs, by="nDCG@k")[1].table
    assert by_ndcg["nDCG@k"].is_monotonic_decreasing
    assert summarize_runs(runs, by="ndcg_at_k")[1].table["run"].tolist() == by_ndcg["run"].tolist()


def test_only_params_with_two_different_logged_values_are_shown_shared_ones_first():
    group = summarize_runs(frame(pipeline_runs()))[0]
    # each model's own section is logged by one run only: no difference; evaluate.* and sizes are equal
    assert group.params == ["latent_size", "learning_rate", "epochs", "regularization", "seed", "parameter_count"]
    again = pipeline_runs(start=20)[:1]
    again[0]["params.cofi.num_features"] = again[0]["params.latent_size"] = "20"
    group = summarize_runs(frame(pipeline_runs(), again))[0]
    assert "cofi.num_features" in group.params and "cofi.lambda_" not in group.params
    cofi = group.table.set_index("run_id")
    assert cofi.loc[again[0]["run_id"], "cofi.num_features"] == "20"


def test_the_text_fits_120_columns_with_every_run_and_a_heading_per_group():
    runs = frame(pipeline_runs(), pipeline_runs("ml-latest-small", "cold_item", start=20))
    text = render(summarize_runs(runs, by="ndcg_at_k"), by="ndcg_at_k")
    lines = text.splitlines()
    assert max(map(len, lines)) <= WIDTH
    assert "ml-latest-small, cold_item split: 9 runs, best first on nDCG@k" in lines
    assert "ml-latest-small, random split: 9 runs, best first on nDCG@k" in lines
    # the heading names the source: run names leave it out, and start each block of columns
    assert sum(line.startswith("genre_affinity-ranking  ") for line in lines) == 2 * 2 and "@ml-latest-small" not in text
    assert "3f2a9c1b" in text and "parameter_count" in text and "496610" in text


def test_json_holds_the_groups_runs_metrics_and_differing_params():
    runs = frame(pipeline_runs())
    document = json.loads(as_json(summarize_runs(runs, by="rmse"), "recsys", by="RMSE"))
    assert (document["experiment"], document["by"]) == ("recsys", "rmse")
    (group,) = document["groups"]
    assert (group["data_source"], group["split"], len(group["runs"])) == ("ml-latest-small", "random", 9)
    first = group["runs"][0]
    assert (first["run"], first["family"], first["objective"]) == ("cofi-rating@ml-latest-small", "cofi", "rating")
    assert first["dataset_fingerprint"].startswith("3f2a9c1b") and len(first["run_id"]) == 32
    assert first["metrics"]["rmse"] == pytest.approx(0.86) and first["params"]["latent_size"] == "50"
    popularity = next(run for run in group["runs"] if run["run"].startswith("popularity"))
    assert popularity["metrics"]["rmse"] is None and popularity["params"]["latent_size"] is None


def test_unknown_metric_source_or_split_is_a_config_error():
    with pytest.raises(ConfigError, match="--by: unknown metric 'speed'"):
        summarize_runs(frame(pipeline_runs()), by="speed")
    with pytest.raises(ConfigError, match="--source: unknown data source 'ml-2m'; choose one of synthetic, ml-latest-small"):
        run_filter(source="ml-2m")
    with pytest.raises(ConfigError, match="--split: unknown split strategy 'by_user'"):
        run_filter(split="by_user")
    assert run_filter("ml-1m", "temporal") == "tags.data_source = 'ml-1m' and params.split_strategy = 'temporal'"


def test_no_runs_give_no_groups():
    assert summarize_runs(pd.DataFrame()) == []
    assert compare_runs("no-such-experiment") == []


def log_run(experiment: str, name: str, source: str, split: str, rmse: float) -> None:
    dataset = {"source": source, "fingerprint": "f"}
    with tracking.start_run(f"{name}-rating@{source}", experiment, name, dataset, "rating", model=name) as run_id:
        tracking.log_params({**tracking.identity_params(name, "rating", dataset, split), name: {"reg_user": 15}})
        tracking.log_metrics({"test_rmse": rmse}, run_id=run_id)


def test_compare_reads_the_last_matching_runs_from_mlflow():
    for name, rmse in (("old", 0.80), ("good", 0.85), ("bad", 0.95)):
        log_run("exp", name, "synthetic", "random", rmse)
    log_run("exp", "other", "ml-100k", "random", 0.5)
    log_run("exp", "later", "synthetic", "temporal", 0.7)
    (group,) = compare_runs("exp", last=2, source="synthetic", split="random")
    assert group.table["run"].tolist() == ["good-rating@synthetic", "bad-rating@synthetic"]
    assert group.table["RMSE"].tolist() == [0.85, 0.95]
    synthetic = compare_runs("exp", source="synthetic")
    assert [(g.data_source, g.split) for g in synthetic] == [("synthetic", "temporal"), ("synthetic", "random")]
    assert [len(g.table) for g in compare_runs("exp", split="random")] == [1, 3]
    with pytest.raises(ConfigError, match="--last"):
        compare_runs("exp", last=0)


def test_recsys_compare_prints_the_table_best_first_or_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the default experiment name is used
    assert "no runs in MLflow experiment 'recsys'" in CliRunner().invoke(app, ["compare"]).output
    for name, rmse in (("weak", 0.95), ("strong", 0.85)):
        log_run("recsys", name, "synthetic", "random", rmse)
    result = CliRunner().invoke(app, ["compare", "--by", "RMSE", "--last", "5"])
    assert result.exit_code == 0
    assert result.output.index("strong-rating") < result.output.index("weak-rating")
    assert "synthetic, random split: 2 runs, best first on RMSE" in result.output
    document = json.loads(CliRunner().invoke(app, ["compare", "--json", "--split", "random"]).output)
    assert [run["run"] for run in document["groups"][0]["runs"]] == ["strong-rating@synthetic", "weak-rating@synthetic"]
    none = CliRunner().invoke(app, ["compare", "--source", "ml-1m", "--split", "temporal"])
    assert "no runs in MLflow experiment 'recsys' matching --source ml-1m --split temporal" in none.output
    bad = CliRunner().invoke(app, ["compare", "--by", "speed"])
    assert bad.exit_code == 1 and "unknown metric 'speed'" in bad.output
