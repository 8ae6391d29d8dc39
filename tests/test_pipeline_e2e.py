"""The whole pipeline, end to end, through DVC in a temporary copy of the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import Params
from tests.browser import count_near, external_resources, screenshot, share_not_white
from tests.factories import noise_lines
from tests.isolation import BIN, GIT, copy_repository, environment, merge, run_tool

pytestmark = pytest.mark.slow

# Small enough for seconds per stage; big enough that every stage has real work.
SMALL = {
    "data": {"synthetic": {"n_users": 60, "n_movies": 200, "n_ratings": 3000, "min_user_ratings": 20}},
}


tool = run_tool  # a console script of this environment (dvc, recsys) in the copy, as a user runs it


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tool(repo, "dvc", *args, check=check)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The MLflow store of the reproduced repository's runs (every test gets a fresh one otherwise)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-e2e') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    repo = copy_repository(tmp_path_factory.mktemp("repo"), SMALL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        return repo, dvc(repo, "repro")


def test_dvc_repro_builds_every_stage_output(reproduced):
    repo, _ = reproduced
    for output in [
        "data/raw/ratings.parquet",
        "data/raw/movies.parquet",
        "data/raw/dataset.json",
        "reports/validation/summary.json",
        "data/split/train.parquet",
        "data/split/test.parquet",
        "data/features/users.parquet",
        "data/features/movies.parquet",
        "data/features/scalers.json",
    ]:
        assert (repo / output).is_file(), output
    for folder in ("models/cofi", "models/content", "models/cofi_ranking", "models/content_ranking"):
        assert any((repo / folder).iterdir()), folder
    train = json.loads((repo / "records/train_cofi_ranking.json").read_text())
    assert train["mlflow_run_id"] and train["model_uri"] and train["data_source"] == "synthetic" and train["seconds"] > 0
    assert (repo / "plots/cofi_ranking_cost.csv").is_file()
    evaluation = json.loads((repo / "metrics/evaluation.json").read_text())
    assert {"cofi", "content", "cofi_ranking", "content_ranking", "popularity", "ease", "genre_affinity"} <= set(evaluation)
    assert "rmse" not in evaluation["cofi_ranking"] and "ndcg_at_k" in evaluation["cofi_ranking"]
    promotion = json.loads((repo / "records/promotion.json").read_text())
    assert set(promotion) == {"cofi", "content", "cofi_ranking", "content_ranking"}
    assert (promotion["cofi"]["metric"], promotion["cofi_ranking"]["metric"]) == ("rmse", "ndcg_at_k")
    assert promotion["cofi_ranking"]["registered_model"] == "recsys-cofi_ranking-synthetic"
    assert json.loads((repo / "metrics/promotion.json").read_text())["cofi"]["promoted"] == 1
    assert "Rating vs ranking objective" in (repo / "reports/report.md").read_text()
    summary = json.loads((repo / "reports/validation/summary.json").read_text())
    assert summary["success"] is True
    meta = json.loads((repo / "data/raw/dataset.json").read_text())
    assert meta["source"] == "synthetic" and meta["n_ratings"] == 3000


def declared_metrics(repo: Path) -> list[str]:
    """Every file that dvc.yaml lists under a stage's `metrics:`."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values()
    return [path for stage in stages for entry in stage.get("metrics", []) for path in (entry if isinstance(entry, dict) else [entry])]


def non_numbers(tree: object, where: str = "") -> list[str]:
    """'key.path: value' of every leaf of a JSON tree that is not an int or a float (a bool is not a number)."""
    if isinstance(tree, dict):
        return [found for key, value in tree.items() for found in non_numbers(value, f"{where}.{key}" if where else key)]
    if isinstance(tree, list):
        return [found for i, value in enumerate(tree) for found in non_numbers(value, f"{where}[{i}]")]
    return [] if isinstance(tree, int | float) and not isinstance(tree, bool) else [f"{where}: {tree!r}"]


def test_every_declared_metrics_file_holds_numbers_only(reproduced):
    repo, _ = reproduced
    files = declared_metrics(repo)
    assert {"metrics/drift.json", "metrics/evaluation.json", "metrics/promotion.json", "metrics/train_cofi.json"} <= set(files)
    assert non_numbers({"a": 1, "b": {"c": "x", "d": True, "e": [0.5, None]}}) == ["b.c: 'x'", "b.d: True", "b.e[1]: None"]
    assert [f"{file}: {found}" for file in files for found in non_numbers(json.loads((repo / file).read_text()))] == []
    assert all((repo / "records" / Path(file).name).is_file() for file in files)  # the rest of each result


def test_recommend_lists_k_unseen_movies_for_every_training_user_from_the_best_ranking_model(reproduced, tmp_path: Path):
    repo, _ = reproduced
    k = Params().recommend.k  # the committed params.yaml holds the defaults (tests/test_config.py)
    top_k = pd.read_parquet(repo / "data/recommendations/top_k.parquet")
    train = pd.read_parquet(repo / "data/split/train.parquet")
    assert list(top_k.columns) == ["user_id", "rank", "movie_id", "score"]
    assert sorted(top_k["user_id"].unique()) == sorted(train["user_id"].unique())
    assert (top_k.groupby("user_id").size() == k).all()
    assert (top_k.groupby("user_id")["rank"].apply(list) == [list(range(1, k + 1))] * top_k["user_id"].nunique()).all()
    assert top_k.merge(train[["user_id", "movie_id"]], on=["user_id", "movie_id"]).empty  # no seen movie
    evaluation = json.loads((repo / "metrics/evaluation.json").read_text())
    best = max(("cofi_ranking", "content_ranking"), key=lambda name: evaluation[name]["ndcg_at_k"])
    meta = json.loads((repo / "data/recommendations/meta.json").read_text())
    assert (meta["model"], meta["metric"], meta["rows"]) == (best, "ndcg_at_k", len(top_k))
    exported = tool(repo, "recsys", "export", "--csv", str(tmp_path / "top_k.csv"))
    assert exported.stdout.startswith(f"exported {len(top_k):,} rows")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "top_k.csv"), top_k)


def test_a_second_dvc_repro_has_nothing_to_do(reproduced):
    repo, _ = reproduced
    again = dvc(repo, "repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout
    assert "changed" not in dvc(repo, "status").stdout


def test_dvc_dag_shows_the_stage_graph(reproduced):
    repo, _ = reproduced
    dot = dvc(repo, "dag", "--dot").stdout
    edges = set(re.findall(r'"([\w.]+)"\s*->\s*"([\w.]+)"', dot))
    assert {("ingest", "validate"), ("validate", "split"), ("split", "features"), ("evaluate", "recommend")} <= edges


def test_dvc_repro_prints_no_library_noise(reproduced):
    _, result = reproduced
    assert noise_lines(result.stdout + result.stderr) == []
    assert "Running stage 'train_content'" in result.stdout  # the stages did run and print their own lines


def tensorflow_import_output() -> str:
    """What importing TensorFlow prints in a plain process (no recsys involved)."""
    env = {k: v for k, v in environment().items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES"}}
    run = subprocess.run([str(BIN / "python"), "-c", "import tensorflow"], capture_output=True, text=True, env=env, timeout=300)
    return run.stderr


def test_recommend_is_quiet_and_verbose_brings_the_library_lines_back(reproduced):
    repo, _ = reproduced
    user = str(int(pd.read_parquet(repo / "data/split/train.parquet")["user_id"].iloc[0]))
    quiet_run = tool(repo, "recsys", "recommend", "--model", "content", "--objective", "rating", "--user", user, "-n", "3")
    assert noise_lines(quiet_run.stdout + quiet_run.stderr) == [] and quiet_run.stderr == ""
    assert quiet_run.stdout.startswith(f"Top 3 for user {user} (content model;")
    verbose_run = tool(repo, "recsys", "--verbose", "recommend", "--model", "content", "--objective", "rating", "--user", user, "-n", "3")
    assert verbose_run.stdout == quiet_run.stdout
    if not noise_lines(tensorflow_import_output()):
        pytest.skip("this TensorFlow build prints nothing when imported")
    assert noise_lines(verbose_run.stderr)


def test_content_lists_come_from_the_content_ranking_model_by_default(reproduced):
    repo, _ = reproduced
    by_genres = tool(repo, "recsys", "recommend", "--model", "content", "--genres", "Horror=5", "-n", "5")
    assert by_genres.stdout.startswith("Top 5 for genre tastes Horror=5 (content_ranking model):") and by_genres.stderr == ""
    assert [row.split()[0] for row in by_genres.stdout.splitlines()[2:7]] == ["1", "2", "3", "4", "5"]
    user = str(int(pd.read_parquet(repo / "data/split/train.parquet")["user_id"].iloc[0]))
    for_user = tool(repo, "recsys", "recommend", "--model", "content", "--user", user, "-n", "3", "--json")
    listed = json.loads(for_user.stdout)
    assert listed["query"]["model"] == "content_ranking" and listed["score"]["key"] == "ranking_score"
    assert [row["rank"] for row in listed["results"]] == [1, 2, 3]


def test_dvc_plots_show_draws_each_plot_once_offline(reproduced, tmp_path: Path):
    repo, _ = reproduced
    listed = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    assert [name for name in listed if "content_loss" in name or "Content model loss" in name] == ["Content model loss per epoch"]
    dvc(repo, "plots", "show")  # the default page, as `make plots` writes it
    page = repo / "dvc_plots" / "index.html"
    assert external_resources(page.read_text(encoding="utf-8")) == []
    pixels = screenshot(page, tmp_path)
    assert share_not_white(pixels) > 0.05  # charts, not a blank page
    assert count_near(pixels, (0x94, 0x5D, 0xD6)) > 1000  # DVC's colour for the workspace's lines and points


def test_validation_page_shows_offline(reproduced, tmp_path: Path):
    repo, _ = reproduced
    page = repo / "reports/validation/index.html"
    assert external_resources(page.read_text(encoding="utf-8")) == []
    pixels = screenshot(page, tmp_path)
    assert share_not_white(pixels) > 0.03
    assert count_near(pixels, (0x1A, 0x7F, 0x37)) > 500  # the green "passed" badge and marks


def test_a_failed_validation_stops_the_pipeline_and_keeps_earlier_outputs(tmp_path: Path):
    repo = copy_repository(tmp_path, merge(SMALL, {"validate": {"min_ratings": 10**9}}))
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "min_ratings" in output or "row_count" in output or "at least" in output
    assert not (repo / "data/split").exists()


def test_dvc_exp_run_on_real_movielens_through_the_mirror(tmp_path: Path, shared_datasets: Path):
    """The README's `dvc exp run -S data.source=ml-latest-small -S data.mirror=...`, up to the features
    stage: real MovieLens read from the mirror, validated, split and featurized. The models' quality
    on this split is measured by benchmarks/ (and, for the ranking floors, tests/models/test_cofi_ranking.py)."""
    repo = copy_repository(tmp_path)
    dvc(repo, "exp", "run", "-S", "data.source=ml-latest-small", "-S", f"data.mirror={shared_datasets}", "features")
    meta = json.loads((repo / "data/raw/dataset.json").read_text())
    assert (meta["source"], meta["n_ratings"]) == ("ml-latest-small", 100_836)
    assert json.loads((repo / "reports/validation/summary.json").read_text())["success"] is True
    train, test = (pd.read_parquet(repo / f"data/split/{name}.parquet") for name in ("train", "test"))
    assert (len(train), len(test)) == (80_668, 20_168)  # sklearn's train_test_split, 0.2, seed 42
    assert pd.read_parquet(repo / "data/features/users.parquet")["user_id"].nunique() == train["user_id"].nunique()
    assert not (repo / "models").exists()  # only the stages up to features ran


def test_dvc_metrics_diff_and_plots_diff_show_a_param_change_against_the_committed_baseline(
    reproduced, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The README's "Comparing experiments in DVC": commit the outputs, change evaluate.k, dvc repro, then
    both diffs. A copy of the reproduced repository, so the other tests keep theirs as it was; its MLflow
    store, where promote finds the training runs."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    repo = tmp_path / "repo"
    shutil.copytree(reproduced[0], repo, symlinks=True)
    subprocess.run([*GIT, "add", "dvc.lock", "metrics", "records", "plots", "data/accepted.json"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "baseline"], cwd=repo, check=True)
    baseline = json.loads((repo / "metrics/evaluation.json").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    k = params["evaluate"]["k"]
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(params, {"evaluate": {"k": k + 5}}), sort_keys=False))

    again = dvc(repo, "repro")
    assert set(re.findall(r"Running stage '(\w+)'", again.stdout)) == {"evaluate", "promote", "recommend"}  # no retraining
    changed = json.loads((repo / "metrics/evaluation.json").read_text())
    metrics = dvc(repo, "metrics", "diff", "--json")
    plots = dvc(repo, "plots", "diff", "--json")
    for result in (metrics, plots):
        assert "failed to load" not in (result.stdout + result.stderr).lower()
    diff = json.loads(metrics.stdout)["metrics/evaluation.json"]
    assert changed["cofi"]["precision_at_k"] != baseline["cofi"]["precision_at_k"]
    assert diff["cofi.precision_at_k"]["old"] == baseline["cofi"]["precision_at_k"]
    assert diff["cofi.precision_at_k"]["new"] == changed["cofi"]["precision_at_k"]
    drawn = json.loads(plots.stdout)
    assert "errors" not in drawn and drawn["data"]
    for name, renders in drawn["data"].items():
        for render in renders:
            assert set(render["revisions"]) == {"HEAD", "workspace"}, name
            assert {row["rev"] for row in render["content"]["data"]["values"]} == {"HEAD", "workspace"}, name
