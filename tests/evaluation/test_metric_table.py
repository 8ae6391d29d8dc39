"""The one metric table: the report, `recsys compare`, the promotion gate and params validation all follow it."""

from __future__ import annotations

import typing

import pandas as pd
import pytest

from pipeline import registry
from pipeline.config import PromoteParams, parse_params
from pipeline.errors import ConfigError
from pipeline.evaluation import compare, report
from pipeline.evaluation.metric_table import KINDS, METRICS, PROMOTION_METRICS, metric


def test_the_table_is_well_formed():
    names = [entry.name for entry in METRICS]
    assert len(set(names)) == len(names)
    assert all(entry.kind in KINDS for entry in METRICS)
    assert metric("ndcg_at_k").header(10) == "nDCG@10"
    with pytest.raises(ValueError, match="unknown metric 'speed'; choose one of rmse, mae"):
        metric("speed")


def test_promote_metric_accepts_exactly_the_promotable_metrics():
    assert typing.get_args(PromoteParams.model_fields["metric"].annotation) == PROMOTION_METRICS
    for entry in METRICS:
        if entry.promotable:
            assert parse_params({"promote": {"metric": entry.name}}).promote.metric == entry.name
        else:
            with pytest.raises(ConfigError, match="promote.metric"):
                parse_params({"promote": {"metric": entry.name}})


@pytest.mark.parametrize("entry", [entry for entry in METRICS if entry.promotable], ids=lambda entry: entry.name)
def test_the_gate_reads_the_direction_from_the_table(entry):
    # a challenger at 1.0 against a champion at 2.0 is better exactly when lower is better
    assert (registry.improvement(entry.name, 1.0, 2.0) > 0) == entry.lower_is_better
    assert registry.decide(entry.name, 1.0, 2.0, 0.0).moves_champion == entry.lower_is_better


def test_the_report_labels_every_metric_of_the_table():
    labels = report.metric_labels(7)
    assert [labels[entry.name] for entry in METRICS] == [entry.header(7) for entry in METRICS]
    assert list(labels)[: len(METRICS)] == [entry.name for entry in METRICS]


def test_compare_shows_every_metric_of_the_table_and_sorts_by_its_direction():
    runs = pd.DataFrame(
        {
            "run_id": ["low", "high"],
            "start_time": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            **{f"metrics.test_{entry.name}": [1.0, 2.0] for entry in METRICS},
        }
    )
    for entry in METRICS:
        (group,) = compare.summarize_runs(runs, by=entry.name)
        assert entry.header("k") in group.table.columns
        assert group.table["run_id"].iloc[0] == ("low" if entry.lower_is_better else "high")
        (again,) = compare.summarize_runs(runs, by=entry.header("k"))
        assert again.table["run_id"].tolist() == group.table["run_id"].tolist()
