"""Stage `evaluate` on tiny data: the evaluation.json schema, plots, report, MLflow, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline import paths, tracking
from pipeline.config import BiasParams, parse_params
from pipeline.errors import DataError, ModelError
from pipeline.models.baselines import BiasModel
from pipeline.split import split_ratings
from pipeline.models.loading import TRAINED_MODELS
from pipeline.stages.evaluate import run
from pipeline.stages.inputs import dataset_identity
from tests.factories import tiny_movies, tiny_ratings, training_data

PARAMS = parse_params({"evaluate": {"k": 3, "cold_threshold": 4, "plot_sample": 5}, "mlflow": {"experiment": "eval-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "f00d"}
FAKE = {"cofi": "pipeline.models.baselines:BiasModel"}  # a saved model standing in for a trained one
BASELINES = ["bias", "global_mean", "popularity", "ease", "genre_affinity"]
RANKING_BASELINES = ["popularity", "ease", "genre_affinity"]
RESULT_KEYS = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "coverage", "n_test_ratings", "n_ranked_users", "cold"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    train, test = split_ratings(tiny_ratings(n_users=10, per_user=9), "random", 0.3, 0)
    for folder in (paths.RAW, paths.SPLIT):
        folder.mkdir(parents=True)
    tiny_movies().to_parquet(paths.RAW_MOVIES, index=False)
    paths.RAW_META.write_text(json.dumps(DATASET))
    train.to_parquet(paths.TRAIN, index=False)
    test.to_parquet(paths.TEST, index=False)
    return tmp_path


def fake_trained_model(run_id: str | None = "new", name: str = "cofi", **info) -> str | None:
    """models/<name> (a bias model), metrics/train_<name>.json (run id, the dataset as the training
    stages record it, `info` on top; a None value drops the key) and, by default, its MLflow training run."""
    BiasModel.fit(training_data(pd.read_parquet(paths.TRAIN), tiny_movies()), BiasParams(reg_user=1.0)).save(paths.MODELS / name)
    if run_id == "new":
        with tracking.start_run(name, "eval-test", name, DATASET) as run_id:
            pass
    paths.METRICS.mkdir(exist_ok=True)
    record = {"mlflow_run_id": run_id, **dataset_identity(DATASET), **info}
    (paths.METRICS / f"train_{name}.json").write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    return run_id


def outputs(models: list[str]) -> list[Path]:
    files = [paths.METRICS / "evaluation.json", paths.PLOTS / "error_by_activity.csv", paths.REPORTS / "report.html"]
    return files + [paths.REPORTS / "report.md", *(paths.PLOTS / f"predictions_{m}.csv" for m in models)]


def test_baselines_only_writes_the_schema_plots_report_and_mlflow_runs(workdir):
    run(PARAMS, trained={})
    evaluation = json.loads((paths.METRICS / "evaluation.json").read_text())
    assert list(evaluation) == BASELINES
    for name in ("bias", "global_mean"):
        assert list(evaluation[name]) == RESULT_KEYS
        assert list(evaluation[name]["cold"]) == ["rmse", "mae", "n_test_ratings"]
    for name in RANKING_BASELINES:
        assert list(evaluation[name]) == [k for k in RESULT_KEYS if k not in ("rmse", "mae")]
    test = pd.read_parquet(paths.TEST)
    assert evaluation["bias"]["n_test_ratings"] == len(test)
    assert evaluation["bias"]["n_ranked_users"] == test.loc[test["rating"] >= 4.0, "user_id"].nunique()
    assert all(path.is_file() for path in outputs(["bias", "global_mean"]))
    assert not (paths.PLOTS / "predictions_popularity.csv").exists()
    sample = pd.read_csv(paths.PLOTS / "predictions_bias.csv")
    assert list(sample.columns) == ["actual", "predicted"] and len(sample) == 5
    activity = pd.read_csv(paths.PLOTS / "error_by_activity.csv")
    assert list(activity.columns) == ["model", "activity", "n_test_ratings", "rmse", "mae"]
    assert set(activity["model"]) == {"bias", "global_mean"}
    page, markdown = (paths.REPORTS / "report.html").read_text(), (paths.REPORTS / "report.md").read_text()
    assert all(f"<td>{name}</td>" in page and f"| {name} |" in markdown for name in evaluation)
    runs = tracking.search_runs("eval-test").set_index("tags.mlflow.runName")
    assert sorted(runs.index) == sorted(BASELINES)
    assert runs.loc["bias", "metrics.test_rmse"] == pytest.approx(evaluation["bias"]["rmse"])
    assert runs.loc["bias", "params.bias.reg_user"] == "15.0"


def test_a_trained_model_is_evaluated_and_its_metrics_land_in_its_training_run(workdir):
    run_id = fake_trained_model()
    paths.PLOTS.mkdir(exist_ok=True)
    pd.DataFrame({"iteration": [0, 1], "cost": [2.0, 1.0]}).to_csv(paths.PLOTS / "cofi_cost.csv", index=False)
    run(PARAMS, trained=FAKE)
    evaluation = json.loads((paths.METRICS / "evaluation.json").read_text())
    assert list(evaluation) == ["cofi", *BASELINES]
    assert evaluation["cofi"]["rmse"] != evaluation["bias"]["rmse"]  # reg_user 1 vs 15
    assert (paths.PLOTS / "predictions_cofi.csv").is_file()
    assert "Learning curves" in (paths.REPORTS / "report.html").read_text()
    runs = tracking.search_runs("eval-test").set_index("run_id")
    assert runs.loc[run_id, "metrics.test_rmse"] == pytest.approx(evaluation["cofi"]["rmse"])
    assert runs.loc[run_id, "metrics.test_ndcg_at_k"] == pytest.approx(evaluation["cofi"]["ndcg_at_k"])
    assert runs.loc[run_id, "metrics.evaluate_k"] == 3
    assert len(runs) == 1 + len(BASELINES)  # the training run and one per baseline


def test_a_training_run_missing_from_the_store_gets_a_new_run(workdir, capsys):
    fake_trained_model(run_id="0" * 32)
    run(PARAMS, trained=FAKE)
    assert "not in this store" in capsys.readouterr().out
    assert "cofi" in set(tracking.search_runs("eval-test")["tags.mlflow.runName"])


def test_the_same_inputs_give_the_same_metrics(workdir):
    run(PARAMS, trained={})
    first = (paths.METRICS / "evaluation.json").read_text()
    run(PARAMS, trained={})
    assert (paths.METRICS / "evaluation.json").read_text() == first


@pytest.mark.parametrize(
    ("prepare", "error", "message"),
    [
        (lambda: None, ModelError, r"models/cofi: model folder not found"),
        (lambda: fake_trained_model(run_id=None), ModelError, r"metrics/train_cofi.json: no 'mlflow_run_id'"),
        (
            lambda: fake_trained_model(dataset_fingerprint="beef"),
            ModelError,
            r"metrics/train_cofi.json: the cofi model was trained on another dataset \(fingerprint beef, data/raw/dataset.json has f00d\)",
        ),
        (
            lambda: (fake_trained_model(), tiny_movies(13).to_parquet(paths.RAW_MOVIES, index=False)),
            ModelError,
            r"models/cofi: trained on another dataset: its catalogue has 12 movies, data/raw/movies.parquet has 13",
        ),
        (
            lambda: pd.read_parquet(paths.TEST).head(0).to_parquet(paths.TEST, index=False),
            DataError,
            r"data/split/test.parquet: no rows",
        ),
        (lambda: paths.RAW_META.unlink(), DataError, r"data/raw/dataset.json: not found"),
    ],
    ids=["missing-folder", "no-run-id", "other-fingerprint", "other-catalogue", "empty-test", "no-dataset-json"],
)
def test_bad_inputs_are_one_clear_error_and_nothing_is_written(workdir, prepare, error, message):
    prepare()
    with pytest.raises(error, match=message):
        run(PARAMS, trained=FAKE)
    assert not any(path.exists() for path in outputs(["cofi", "bias", "global_mean"]))


@pytest.mark.parametrize("name", list(TRAINED_MODELS))
def test_a_trained_model_without_a_recorded_dataset_is_an_error_telling_to_retrain(workdir, name):
    fake_trained_model(name=name, dataset_fingerprint=None)
    with pytest.raises(ModelError, match=rf"metrics/train_{name}.json: no 'dataset_fingerprint'.*retrain it \(dvc repro --force train_{name}\)"):
        run(PARAMS, trained={name: FAKE["cofi"]})
    assert not any(path.exists() for path in outputs([name, "bias", "global_mean"]))


def test_a_dataset_json_without_a_fingerprint_is_a_data_error(workdir):
    fake_trained_model()
    paths.RAW_META.write_text(json.dumps({key: value for key, value in DATASET.items() if key != "fingerprint"}))
    with pytest.raises(DataError, match="data/raw/dataset.json: needs a non-empty string 'fingerprint' \\(got None\\)"):
        run(PARAMS, trained=FAKE)


def fake_ranking_model(name: str = "cofi_ranking") -> str:
    """models/<name>: a small trained cofi_ranking model, with its training record and MLflow run."""
    from pipeline.config import CofiRankingParams
    from pipeline.models.cofi_ranking import CofiRankingModel

    data = training_data(pd.read_parquet(paths.TRAIN), tiny_movies())
    CofiRankingModel.fit(data, CofiRankingParams(num_features=3, iterations=3, positive_threshold=None)).save(paths.MODELS / name)
    with tracking.start_run(name, "eval-test", name, DATASET) as run_id:
        pass
    paths.METRICS.mkdir(exist_ok=True)
    (paths.METRICS / f"train_{name}.json").write_text(json.dumps({"mlflow_run_id": run_id, **dataset_identity(DATASET)}))
    return run_id


def test_a_ranking_model_gets_ranking_metrics_only_from_its_raw_scores(workdir, monkeypatch):
    from pipeline.models.cofi_ranking import CofiRankingModel

    fake_ranking_model()
    ranked_with = []
    original = CofiRankingModel.with_ranking
    monkeypatch.setattr(CofiRankingModel, "with_ranking", lambda self, ranking: ranked_with.append(ranking) or original(self, ranking))
    run(PARAMS, trained={"cofi_ranking": TRAINED_MODELS["cofi_ranking"]})
    evaluation = json.loads((paths.METRICS / "evaluation.json").read_text())
    assert list(evaluation) == ["cofi_ranking", *BASELINES]
    assert list(evaluation["cofi_ranking"]) == [k for k in RESULT_KEYS if k not in ("rmse", "mae")]
    assert ranked_with == [None]  # params.ranking (shrinkage 500) is for rating models
    assert not (paths.PLOTS / "predictions_cofi_ranking.csv").exists()


def test_ease_beyond_max_movies_is_a_skipped_row_and_the_report_says_why(workdir):
    params = PARAMS.model_copy(update={"evaluate": PARAMS.evaluate.model_copy(update={"ease": PARAMS.evaluate.ease.model_copy(update={"max_movies": 2})})})
    run(params, trained={})
    evaluation = json.loads((paths.METRICS / "evaluation.json").read_text())
    assert list(evaluation["ease"]) == ["skipped"]
    assert "more than evaluate.ease.max_movies 2" in evaluation["ease"]["skipped"]
    assert "ndcg_at_k" in evaluation["genre_affinity"]
    markdown = (paths.REPORTS / "report.md").read_text()
    assert "ease was skipped: ease: " in markdown and "| ease |" not in markdown
    assert "ease" not in set(tracking.search_runs("eval-test")["tags.mlflow.runName"])


def test_a_cold_item_split_offers_only_movies_without_a_training_rating(workdir):
    from pipeline.evaluation.metrics import rated_in_train, top_k_items
    from pipeline.models.base import Catalogue

    ratings = tiny_ratings(n_users=10, per_user=9)
    train, test = split_ratings(ratings, "cold_item", 0.3, 0)
    train.to_parquet(paths.TRAIN, index=False)
    test.to_parquet(paths.TEST, index=False)
    params = PARAMS.model_copy(update={"split": PARAMS.split.model_copy(update={"strategy": "cold_item"})})
    run(params, trained={})
    evaluation = json.loads((paths.METRICS / "evaluation.json").read_text())
    catalogue = Catalogue.from_movies(tiny_movies())
    warm = rated_in_train(train, catalogue)
    assert 0 < warm.sum() < len(catalogue)
    # every model lists only the cold movies: coverage is bounded by their share of the catalogue
    for name in BASELINES:
        assert evaluation[name]["coverage"] <= (~warm).sum() / len(catalogue) + 1e-12, name
    assert "only the movies nobody rated in train" in (paths.REPORTS / "report.md").read_text()
    popularity = BiasModel.fit(training_data(train, tiny_movies()), BiasParams())
    from pipeline.evaluation.metrics import seen_items

    lists = top_k_items(popularity.score_block, catalogue, seen_items(train, catalogue), test["user_id"].unique(), 3, excluded=warm)
    assert not set(lists["movie_id"]) & set(catalogue.movie_ids[warm])
    assert set(lists["movie_id"]) <= set(test["movie_id"]) | set(catalogue.movie_ids[~warm])
