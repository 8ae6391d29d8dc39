"""Layout: every stage file under one root; the default one is the repository's relative layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import DataError
from pipeline.paths import DEFAULT_LAYOUT, Layout


def test_the_default_layout_names_the_files_dvc_yaml_tracks_relative_to_the_root():
    layout = DEFAULT_LAYOUT
    assert [str(p) for p in (layout.raw_ratings, layout.raw_movies, layout.raw_meta)] == [
        "data/raw/ratings.parquet", "data/raw/movies.parquet", "data/raw/dataset.json",
    ]  # fmt: skip
    assert (str(layout.train), str(layout.test), str(layout.features)) == (
        "data/split/train.parquet",
        "data/split/test.parquet",
        "data/features",
    )
    assert (str(layout.model_dir("cofi")), str(layout.training_metrics("content"))) == ("models/cofi", "metrics/train_content.json")
    assert (str(layout.training_record("content")), str(layout.record_of(layout.promotion))) == (
        "records/train_content.json", "records/promotion.json",
    )  # fmt: skip
    assert (str(layout.learning_curve("cofi")), str(layout.learning_curve("content"))) == ("plots/cofi_cost.csv", "plots/content_loss.csv")
    assert (str(layout.evaluation), str(layout.predictions("bias")), str(layout.validation_reports)) == (
        "metrics/evaluation.json", "plots/predictions_bias.csv", "reports/validation",
    )  # fmt: skip
    assert (str(layout.top_k), str(layout.top_k_meta)) == ("data/recommendations/top_k.parquet", "data/recommendations/meta.json")


def test_a_layout_puts_everything_under_its_root(tmp_path: Path):
    layout = Layout(tmp_path)
    assert layout.train == tmp_path / "data/split/train.parquet" and layout.report_md == tmp_path / "reports/report.md"


@pytest.mark.parametrize(
    ("file", "stage"),
    [("raw_meta", "ingest"), ("test", "split"), ("evaluation", "evaluate"), ("top_k", "recommend"), ("models", "previous")],
)
def test_a_missing_input_names_the_stage_that_writes_it(tmp_path: Path, file: str, stage: str):
    layout = Layout(tmp_path)
    with pytest.raises(DataError, match=f"^{re.escape(str(getattr(layout, file)))}: not found; run the {stage} stage first$"):
        layout.require(getattr(layout, file))
    with pytest.raises(DataError, match="run the features stage first"):
        layout.require(layout.features / "users.parquet")
    with pytest.raises(DataError, match="records/evaluation.json: not found; run the evaluate stage first"):
        layout.require(layout.record_of(layout.evaluation))
