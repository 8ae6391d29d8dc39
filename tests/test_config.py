"""params.yaml is checked: unknown keys, wrong types and impossible values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Params, load_params, parse_params
from pipeline.errors import ConfigError
from tests.isolation import committed_yaml


def test_the_committed_params_file_loads_and_matches_the_model_defaults():
    """The committed params.yaml: the working copy holds whatever `dvc exp run -S` last wrote into it."""
    params = parse_params(committed_yaml("params.yaml"))
    assert params == Params(), "params.yaml (as committed) and the defaults in config.py disagree"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"split": {"test_size": 1.5}}, "split.test_size"),
        ({"split": {"strategy": "sideways"}}, "split.strategy"),
        ({"splitt": {}}, "splitt: unknown key"),
        ({"data": {"synthetic": {"n_users": "many"}}}, "data.synthetic.n_users"),
        ({"data": {"source": "ml-2m"}}, "data.source"),
        ({"cofi": {"num_features": 0}}, "cofi.num_features"),
        ({"cofi": {"lambda_": -1}}, "cofi.lambda_"),
        ({"cofi": {"iterations": 0}}, "cofi.iterations"),
        ({"validate": {"min_ratings": 0}}, "validate.min_ratings"),
        ({"validate": {"min_timestamp": 100, "max_timestamp": 100}}, "validate: max_timestamp"),
        ({"data": {"synthetic": {"n_users": 10, "n_movies": 50, "n_ratings": 5000}}}, "at most half"),
        ({"data": {"synthetic": {"n_users": 100, "min_user_ratings": 20, "n_ratings": 1000}}}, "at least"),
        ({"recommend": {"k": 0}}, "recommend.k"),
        ({"recommend": {"batch_size": 0}}, "recommend.batch_size"),
        ({"recommend": {"table": "recs; DROP TABLE ratings"}}, "recommend.table"),
        ({"serve": {"max_rows": 0}}, "serve.max_rows"),
        ({"serve": {"k": 20, "max_k": 10}}, "serve: k \\(20\\) cannot exceed max_k \\(10\\)"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_params(raw)


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        parse_params({"split": {"test_size": 2}, "cofi": {"num_features": 0}})
    assert "split.test_size" in str(info.value) and "cofi.num_features" in str(info.value)


def test_a_missing_or_malformed_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(broken)
    broken.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(broken)


def test_an_empty_file_means_all_defaults(tmp_path: Path):
    empty = tmp_path / "params.yaml"
    empty.write_text("")
    assert load_params(empty) == Params()


def test_mirror_comes_from_the_param_else_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RECSYS_DATA_MIRROR", str(tmp_path / "env"))
    assert parse_params({}).data.mirror_dir() == tmp_path / "env"
    assert parse_params({"data": {"mirror": str(tmp_path / "p")}}).data.mirror_dir() == tmp_path / "p"
    monkeypatch.delenv("RECSYS_DATA_MIRROR")
    assert parse_params({}).data.mirror_dir() is None


@pytest.mark.parametrize("key", ["mirror", "cache_dir"])
def test_a_relative_data_path_is_relative_to_the_params_file_not_the_current_directory(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (repo / "params.yaml").write_text(f"data:\n  {key}: ../datasets\n")
    monkeypatch.chdir(elsewhere)
    data = load_params(repo / "params.yaml").data
    assert getattr(data, key) == str(tmp_path.resolve() / "datasets")
    assert (data.mirror_dir() if key == "mirror" else data.cache_path()) == tmp_path.resolve() / "datasets"


@pytest.mark.parametrize("value", ["/abs/mirror", "~/mirror"])
def test_an_absolute_or_home_data_path_is_kept(value: str, tmp_path: Path):
    (tmp_path / "params.yaml").write_text(f"data:\n  mirror: {value}\n")
    data = load_params(tmp_path / "params.yaml").data
    assert data.mirror == value and data.mirror_dir() == Path(value).expanduser()


def test_every_section_of_params_yaml_is_read_by_a_dvc_stage():
    """A section no stage lists would change nothing when edited: dvc.yaml must list each one."""
    stages = committed_yaml("dvc.yaml")["stages"]
    listed = {str(entry).split(".")[0] for stage in stages.values() for entry in stage.get("params", [])}
    sections = set(committed_yaml("params.yaml"))
    assert sections - listed == set()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("cutoff: 2018-01-01", 1_514_764_800),  # YAML reads this as a date
        ("cutoff: '2018-01-01'", 1_514_764_800),
        ("cutoff: 2018-01-01T01:30:00+01:00", 1_514_764_800 + 1_800),  # 00:30 UTC
        ("cutoff: '2018-01-01 00:00:59.9'", 1_514_764_859),  # naive = UTC, sub-seconds floored
        ("cutoff: null", None),
    ],
)
def test_split_cutoff_accepts_dates_and_iso_timestamps(tmp_path: Path, text: str, seconds: int | None):
    file = tmp_path / "params.yaml"
    file.write_text(f"split:\n  strategy: time_cutoff\n  {text}\n")
    assert load_params(file).split.cutoff_seconds() == seconds


@pytest.mark.parametrize("value", ["yesterday", "2018-13-01", ""])
def test_a_bad_split_cutoff_names_the_key(value: str):
    with pytest.raises(ConfigError, match=r"split\.cutoff: expected a date 'YYYY-MM-DD' or an ISO 8601 date/time"):
        parse_params({"split": {"cutoff": value}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"source": "csv"}}, "data.source"),
        ({"data": {"rating_scale": {"min": 1, "max": 5, "step": 0.3}}}, "data.rating_scale: max - min"),
        ({"data": {"rating_scale": {"min": 5, "max": 1, "step": 1}}}, "data.rating_scale"),
        ({"data": {"sql": {"url_env": "postgresql://u:p@h/db"}}}, "data.sql.url_env"),
        ({"data": {"sql": {"connect_timeout_seconds": 0}}}, "data.sql.connect_timeout_seconds"),
        ({"data": {"columns": {"user": ""}}}, "data.columns.user"),
        ({"data": {"columns": {"rating": None}}}, "data.columns.rating"),
        ({"data": {"files": {"ratings": "r.csv", "users": "u.csv"}}}, "data.files.users: unknown key"),
    ],
)
def test_bad_own_data_params_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_params(raw)
