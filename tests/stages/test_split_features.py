from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import parse_params
from pipeline.errors import DataError
from pipeline.features import build_features, load_features, scalers_to_dict
from pipeline.paths import Layout
from pipeline.stages import features as features_stage
from pipeline.stages import split as split_stage
from tests.factories import layout_with

OUTPUT_FILES = ("users.parquet", "movies.parquet", "scalers.json")


def raw_ratings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    pairs = rng.choice(8 * 10, size=50, replace=False)
    return pd.DataFrame(
        {
            "user_id": (pairs // 10 + 1).astype("int64"),
            "movie_id": (pairs % 10 + 100).astype("int64"),
            "rating": rng.integers(1, 11, 50) / 2.0,
            "timestamp": (1_000_000_000 + rng.integers(0, 10**6, 50)).astype("int64"),
        }
    )


def raw_movies() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movie_id": np.arange(100, 112, dtype="int64"),  # 110, 111 are never rated
            "title": [f"Movie {i} (2000)" for i in range(12)],
            "year": pd.array([1995, 2000, None, 1980, 2010, 2001, 1999, 2003, 1970, 2015, 2020, None], dtype="Int64"),
            "genres": [
                "Action",
                "Comedy",
                "Action|Drama",
                "",
                "Drama",
                "Comedy|Romance",
                "Sci-Fi",
                "Action",
                "Drama",
                "Comedy",
                "Horror",
                "",
            ],
        }
    )


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return layout_with(tmp_path, ratings=raw_ratings(), movies=raw_movies())


def snapshot(layout: Layout) -> dict[str, bytes]:
    return {name: (layout.features / name).read_bytes() for name in OUTPUT_FILES}


def test_split_stage_writes_a_partition_of_raw_ratings(layout: Layout) -> None:
    split_stage.run(parse_params({"split": {"strategy": "random", "test_size": 0.2, "seed": 1}}), layout)
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    assert (len(train), len(test)) == (40, 10)
    both = pd.concat([train, test]).sort_values(["user_id", "movie_id"]).reset_index(drop=True)
    assert both.equals(raw_ratings().sort_values(["user_id", "movie_id"]).reset_index(drop=True))


def test_split_stage_follows_the_strategy_param(layout: Layout) -> None:
    split_stage.run(parse_params({"split": {"strategy": "cold_user", "test_size": 0.25}}), layout)
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    assert test.user_id.nunique() == 2 and set(train.user_id).isdisjoint(test.user_id)


def test_split_stage_missing_input_names_the_file_and_writes_nothing(layout: Layout) -> None:
    layout.raw_ratings.unlink()
    with pytest.raises(DataError, match=r"data/raw/ratings\.parquet: not found"):
        split_stage.run(parse_params({}), layout)
    assert not layout.split.exists()


def test_failed_split_leaves_previous_outputs_untouched(layout: Layout) -> None:
    split_stage.run(parse_params({}), layout)
    before = layout.train.read_bytes(), layout.test.read_bytes()
    raw_ratings().iloc[:1].to_parquet(layout.raw_ratings, index=False)  # one row: empty train
    with pytest.raises(DataError, match="gives 0 train and 1 test"):
        split_stage.run(parse_params({}), layout)
    assert (layout.train.read_bytes(), layout.test.read_bytes()) == before
    assert sorted(p.name for p in layout.split.iterdir()) == ["test.parquet", "train.parquet"]


def test_split_stage_time_cutoff_from_params(layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    cutoff = pd.Timestamp(1_000_500_000, unit="s", tz="UTC").isoformat()
    split_stage.run(parse_params({"split": {"strategy": "time_cutoff", "cutoff": cutoff}}), layout)
    train, test = pd.read_parquet(layout.train), pd.read_parquet(layout.test)
    assert (train.timestamp < 1_000_500_000).all() and (test.timestamp >= 1_000_500_000).all()
    assert len(train) + len(test) == 50 and len(train) > 0 and len(test) > 0
    assert "split: train ratings up to 2001-09-" in capsys.readouterr().out


def test_a_cutoff_outside_the_data_is_one_error_exit_1_and_keeps_the_previous_split(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    split_stage.run(parse_params({}), layout)
    before = layout.train.read_bytes(), layout.test.read_bytes()
    monkeypatch.chdir(layout.root)  # the CLI runs the stage at the repository root: here
    (layout.root / "params.yaml").write_text("split:\n  strategy: time_cutoff\n  cutoff: 2031-01-01\n")
    result = CliRunner().invoke(app, ["split", "--params", "params.yaml"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: data/raw/ratings.parquet: split.cutoff 2031-01-01T00:00:00Z is outside the ratings' time range "
        f"{_utc(raw_ratings().timestamp.min())} .. {_utc(raw_ratings().timestamp.max())}: test (ratings at or after it) would be empty"
    )
    assert (layout.train.read_bytes(), layout.test.read_bytes()) == before


def _utc(seconds: int) -> str:
    return pd.Timestamp(int(seconds), unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def test_features_stage_writes_the_features_of_train(layout: Layout) -> None:
    split_stage.run(parse_params({}), layout)
    features_stage.run(parse_params({"features": {"genre_prior": 2.0}}), layout)
    assert sorted(p.name for p in layout.features.iterdir()) == sorted(OUTPUT_FILES)
    loaded = load_features(layout.features)
    expected = build_features(pd.read_parquet(layout.train), raw_movies(), 2.0)
    assert loaded.users.equals(expected.users) and loaded.movies.equals(expected.movies)
    assert scalers_to_dict(loaded.scalers) == scalers_to_dict(expected.scalers)
    assert len(loaded.movies) == 12


def test_changing_test_ratings_changes_no_feature_and_no_scaler(layout: Layout) -> None:
    params = parse_params({"features": {"genre_prior": 1.0}})
    split_stage.run(params, layout)
    features_stage.run(params, layout)
    first = snapshot(layout)
    test = pd.read_parquet(layout.test)
    changed = pd.concat(
        [
            test.iloc[1:].assign(rating=lambda d: 5.5 - d.rating),  # new values, one row dropped
            pd.DataFrame({"user_id": [999], "movie_id": [111], "rating": [5.0], "timestamp": [1_100_000_000]}),
        ]
    )
    changed.to_parquet(layout.test, index=False)
    features_stage.run(params, layout)
    assert snapshot(layout) == first
    layout.test.unlink()  # the stage never needs the test split
    features_stage.run(params, layout)
    assert snapshot(layout) == first


def test_changing_train_ratings_does_change_features(layout: Layout) -> None:
    """The counterpart of the leakage test: the snapshot comparison can fail."""
    params = parse_params({})
    split_stage.run(params, layout)
    features_stage.run(params, layout)
    first = snapshot(layout)
    train = pd.read_parquet(layout.train)
    train.assign(rating=train.rating.where(train.index != 0, 5.5 - train.rating)).to_parquet(layout.train, index=False)
    features_stage.run(params, layout)
    after = snapshot(layout)
    assert all(after[name] != first[name] for name in OUTPUT_FILES)


@pytest.mark.parametrize(
    ("missing", "message"), [("train", r"data/split/train\.parquet: not found"), ("raw_movies", r"data/raw/movies\.parquet: not found")]
)
def test_features_stage_missing_input_names_the_file(layout: Layout, missing: str, message: str) -> None:
    split_stage.run(parse_params({}), layout)
    getattr(layout, missing).unlink()
    with pytest.raises(DataError, match=message):
        features_stage.run(parse_params({}), layout)
    assert not layout.features.exists()


def test_features_stage_empty_train_is_an_error_and_keeps_old_output(layout: Layout) -> None:
    split_stage.run(parse_params({}), layout)
    features_stage.run(parse_params({}), layout)
    first = snapshot(layout)
    pd.read_parquet(layout.train).iloc[:0].to_parquet(layout.train, index=False)
    with pytest.raises(DataError, match=r"data/split/train\.parquet: has no ratings"):
        features_stage.run(parse_params({}), layout)
    assert snapshot(layout) == first


def test_features_stage_train_missing_a_column(layout: Layout) -> None:
    split_stage.run(parse_params({}), layout)
    pd.read_parquet(layout.train).drop(columns="rating").to_parquet(layout.train, index=False)
    with pytest.raises(DataError, match=r"data/split/train\.parquet: missing column\(s\) rating"):
        features_stage.run(parse_params({}), layout)


def test_cli_reports_a_missing_input_in_one_line(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(layout.root)  # the CLI runs the stage at the repository root: here
    (layout.root / "params.yaml").write_text("split:\n  seed: 3\n", encoding="utf-8")
    layout.raw_ratings.unlink()
    result = CliRunner().invoke(app, ["split"])
    assert result.exit_code == 1
    assert "error: data/raw/ratings.parquet: not found" in result.output
