"""`recsys compare`: runs summarized best first, from a hand-made frame and from a real MLflow store."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.evaluation.compare import compare_runs, summarize_runs


def runs_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "start_time": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-01 12:00", "2026-01-01 13:00"]),
            "tags.mlflow.runName": ["cofi", "content", "popularity", "bias"],
            "tags.model_family": ["cofi", "content", "popularity", "bias"],
            "params.cofi.num_features": ["50", None, None, None],
            "params.cofi.lambda_": ["10.0", None, None, None],
            "params.content.epochs": [None, "30", None, None],
            "params.evaluate.k": [None, None, "10", "10"],
            "params.bias.reg_user": [None, None, None, "15.0"],
            "metrics.test_rmse": [0.88, 0.86, None, 0.8824],
            "metrics.test_ndcg_at_k": [0.05, 0.04, 0.158, 0.09],
        }
    )


def test_runs_are_sorted_best_first_with_missing_metrics_last():
    table = summarize_runs(runs_frame(), by="rmse")
    assert table["run"].tolist() == ["content", "cofi", "bias", "popularity"]
    table = summarize_runs(runs_frame(), by="ndcg_at_k")
    assert table["run"].tolist() == ["popularity", "bias", "cofi", "content"]
    assert summarize_runs(runs_frame(), by="nDCG@k")["run"].tolist() == table["run"].tolist()


def test_key_params_are_the_run_family_section():
    table = summarize_runs(runs_frame()).set_index("run")
    assert table.loc["cofi", "params"] == "num_features=50, lambda_=10.0"
    assert table.loc["bias", "params"] == "reg_user=15.0"
    assert table.loc["popularity", "params"] == ""  # only evaluate.* settings: nothing of its own


def test_unknown_sort_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="--by: unknown metric 'speed'"):
        summarize_runs(runs_frame(), by="speed")


def test_no_runs_give_an_empty_table():
    assert summarize_runs(pd.DataFrame()).empty
    assert compare_runs("no-such-experiment").empty


def test_compare_reads_the_last_runs_from_mlflow():
    from pipeline import tracking

    for name, rmse in (("old", 0.80), ("good", 0.85), ("bad", 0.95)):
        with tracking.start_run(name, "exp", "bias", {"source": "synthetic"}) as run_id:
            tracking.log_params({"bias": {"reg_user": 15}})
            tracking.log_metrics({"test_rmse": rmse}, run_id=run_id)
    table = compare_runs("exp", last=2)
    assert table["run"].tolist() == ["good", "bad"]
    assert table["RMSE"].tolist() == [0.85, 0.95]
    assert table["params"].tolist() == ["reg_user=15", "reg_user=15"]
    with pytest.raises(ConfigError, match="--last"):
        compare_runs("exp", last=0)


def test_recsys_compare_prints_the_table_best_first(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline import tracking
    from pipeline.cli import app

    monkeypatch.chdir(tmp_path)  # no params.yaml here: the default experiment name is used
    assert "no runs in MLflow experiment 'recsys'" in CliRunner().invoke(app, ["compare"]).output
    for name, ndcg in (("weak", 0.05), ("strong", 0.16)):
        with tracking.start_run(name, "recsys", "bias", {}) as run_id:
            tracking.log_metrics({"test_ndcg_at_k": ndcg}, run_id=run_id)
    result = CliRunner().invoke(app, ["compare", "--by", "nDCG@k", "--last", "5"])
    assert result.exit_code == 0
    assert result.output.index("strong") < result.output.index("weak")
    bad = CliRunner().invoke(app, ["compare", "--by", "speed"])
    assert bad.exit_code == 1 and "unknown metric 'speed'" in bad.output
