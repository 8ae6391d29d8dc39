"""Stage `evaluate` on tiny data: the evaluation.json schema, plots, report, MLflow, and every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import records, tracking
from pipeline.config import BiasParams, parse_params
from pipeline.errors import DataError, ModelError
from pipeline.io import write_json
from pipeline.models.baselines import BiasModel
from pipeline.models.loading import TRAINED_MODELS
from pipeline.paths import Layout
from pipeline.split import split_ratings
from pipeline.stages.evaluate import run
from pipeline.stages.inputs import dataset_identity
from tests.factories import layout_with, tiny_movies, tiny_ratings, training_data
from tests.stages.mlflow_views import inputs

PARAMS = parse_params({"evaluate": {"k": 3, "cold_threshold": 4, "plot_sample": 5}, "mlflow": {"experiment": "eval-test"}})
DATASET = {"source": "synthetic", "rating_min": 0.5, "rating_max": 5.0, "rating_step": 0.5, "fingerprint": "f00d"}
FAKE = {"cofi": "pipeline.models.baselines:BiasModel"}  # a saved model standing in for a trained one
BASELINES = ["bias", "global_mean", "popularity", "ease", "genre_affinity"]
RANKING_BASELINES = ["popularity", "ease", "genre_affinity"]
RESULT_KEYS = [
    "rmse",
    "mae",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "map_at_k",
    "coverage",
    "n_test_ratings",
    "n_ranked_users",
    "cold",
]


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    train, test = split_ratings(tiny_ratings(n_users=10, per_user=9), "random", 0.3, 0)
    return layout_with(tmp_path, train=train, test=test, movies=tiny_movies(), dataset=DATASET)


def fake_trained_model(layout: Layout, run_id: str | None = "new", name: str = "cofi", **info) -> str | None:
    """models/<name> (a bias model), records/train_<name>.json (run id, the dataset as the training
    stages record it, `info` on top; a None value drops the key) and, by default, its MLflow training run."""
    model = BiasModel.fit(training_data(pd.read_parquet(layout.train), tiny_movies()), BiasParams(reg_user=1.0))
    model.save(layout.model_dir(name))
    if run_id == "new":
        with tracking.start_run(name, "eval-test", name, DATASET) as run_id:
            pass
    record = {"mlflow_run_id": run_id, **dataset_identity(DATASET), **info}
    write_json(layout.training_record(name), {k: v for k, v in record.items() if v is not None})
    return run_id


def outputs(layout: Layout, models: list[str]) -> list[Path]:
    files = [layout.evaluation, layout.record_of(layout.evaluation), layout.error_by_activity, layout.report_html, layout.report_md]
    return files + [layout.predictions(m) for m in models]


def test_baselines_only_writes_the_schema_plots_report_and_mlflow_runs(layout):
    run(PARAMS, layout, trained={})
    evaluation = json.loads((layout.evaluation).read_text())
    assert list(evaluation) == BASELINES
    for name in ("bias", "global_mean"):
        assert list(evaluation[name]) == RESULT_KEYS
        assert list(evaluation[name]["cold"]) == ["rmse", "mae", "n_test_ratings"]
    for name in RANKING_BASELINES:
        assert list(evaluation[name]) == [k for k in RESULT_KEYS if k not in ("rmse", "mae")]
    test = pd.read_parquet(layout.test)
    assert evaluation["bias"]["n_test_ratings"] == len(test)
    assert evaluation["bias"]["n_ranked_users"] == test.loc[test["rating"] >= 4.0, "user_id"].nunique()
    assert all(path.is_file() for path in outputs(layout, ["bias", "global_mean"]))
    assert not (layout.predictions("popularity")).exists()
    sample = pd.read_csv(layout.predictions("bias"))
    assert list(sample.columns) == ["actual", "predicted"] and len(sample) == 5
    activity = pd.read_csv(layout.error_by_activity)
    assert list(activity.columns) == ["model", "activity", "n_test_ratings", "rmse", "mae"]
    assert set(activity["model"]) == {"bias", "global_mean"}
    page, markdown = (layout.report_html).read_text(), (layout.report_md).read_text()
    assert all(f"<td>{name}</td>" in page and f"| {name} |" in markdown for name in evaluation)
    runs = tracking.search_runs("eval-test").set_index("tags.model")
    assert sorted(runs.index) == sorted(BASELINES)
    assert runs.loc["bias", "metrics.test_rmse"] == pytest.approx(evaluation["bias"]["rmse"])
    assert runs.loc["bias", "params.bias.reg_user"] == "15.0"
    names = [runs.loc[name, "tags.mlflow.runName"] for name in ("bias", "popularity", "genre_affinity")]
    assert names == ["bias-rating@synthetic", "popularity-ranking@synthetic", "genre_affinity-ranking@synthetic"]
    settings = ["params.evaluate.k", "params.evaluate.relevance_threshold", "params.evaluate.cold_threshold"]
    assert runs.loc["ease", settings].tolist() == ["3", "4.0", "4"]
    assert runs.loc["ease", ["params.family", "params.objective", "params.data_source", "params.split_strategy"]].tolist() == [
        "ease",
        "ranking",
        "synthetic",
        "random",
    ]
    bias = MlflowClient().get_run(runs.loc["bias", "run_id"])
    logged = inputs(bias)
    assert (logged["training"]["name"], logged["testing"]["name"]) == ("synthetic/random/train", "synthetic/random/test")
    assert logged["testing"]["digest"] == tracking.ratings_digest(test[["user_id", "movie_id", "rating"]])
    assert logged["testing"]["profile"]["num_rows"] == len(test)


def test_a_trained_model_is_evaluated_and_its_metrics_land_in_its_training_run(layout):
    run_id = fake_trained_model(layout)
    layout.plots.mkdir()
    pd.DataFrame({"iteration": [0, 1], "cost": [2.0, 1.0]}).to_csv(layout.learning_curve("cofi"), index=False)
    run(PARAMS, layout, trained=FAKE)
    evaluation = json.loads((layout.evaluation).read_text())
    assert list(evaluation) == ["cofi", *BASELINES]
    assert evaluation["cofi"]["rmse"] != evaluation["bias"]["rmse"]  # reg_user 1 vs 15
    assert (layout.predictions("cofi")).is_file()
    assert "Learning curves" in (layout.report_html).read_text()
    runs = tracking.search_runs("eval-test").set_index("run_id")
    assert runs.loc[run_id, "metrics.test_rmse"] == pytest.approx(evaluation["cofi"]["rmse"])
    assert runs.loc[run_id, "metrics.test_ndcg_at_k"] == pytest.approx(evaluation["cofi"]["ndcg_at_k"])
    assert runs.loc[run_id, ["params.evaluate.k", "params.evaluate.cold_threshold"]].tolist() == ["3", "4"]
    assert not [column for column in runs.columns if column.startswith("metrics.evaluate")]  # settings are params
    assert "testing" in inputs(MlflowClient().get_run(run_id))
    assert len(runs) == 1 + len(BASELINES)  # the training run and one per baseline


def test_a_training_run_evaluated_before_with_other_settings_gets_a_nested_run(layout, capsys):
    run_id = fake_trained_model(layout)
    tracking.log_params({"cofi": {"num_features": 7}}, run_id=run_id)
    run(PARAMS, layout, trained=FAKE)
    other = PARAMS.model_copy(update={"evaluate": PARAMS.evaluate.model_copy(update={"k": 2})})
    run(other, layout, trained=FAKE)
    assert f"MLflow run {run_id} of cofi was evaluated with other settings (evaluate.k 3 -> 2)" in capsys.readouterr().out
    runs = tracking.search_runs("eval-test")
    nested = runs[runs["tags.mlflow.parentRunId"] == run_id].iloc[0]
    evaluation = json.loads(layout.evaluation.read_text())
    assert nested["tags.mlflow.runName"] == "cofi-rating@synthetic" and nested["params.cofi.num_features"] == "7"
    assert (nested["params.evaluate.k"], nested["metrics.test_ndcg_at_k"]) == ("2", pytest.approx(evaluation["cofi"]["ndcg_at_k"]))
    first = runs.set_index("run_id").loc[run_id]
    assert first["params.evaluate.k"] == "3"  # the training run keeps its first evaluation


def test_a_training_run_missing_from_the_store_gets_a_new_run(layout, capsys):
    fake_trained_model(layout, run_id="0" * 32)
    run(PARAMS, layout, trained=FAKE)
    assert "not in this store" in capsys.readouterr().out
    assert "cofi-rating@synthetic" in set(tracking.search_runs("eval-test")["tags.mlflow.runName"])


def test_the_same_inputs_give_the_same_metrics(layout):
    run(PARAMS, layout, trained={})
    first = (layout.evaluation).read_text()
    run(PARAMS, layout, trained={})
    assert (layout.evaluation).read_text() == first


@pytest.mark.parametrize(
    ("prepare", "error", "message"),
    [
        (lambda layout: None, ModelError, r"{root}/models/cofi: model folder not found"),
        (lambda layout: fake_trained_model(layout, run_id=None), ModelError, r"{root}/records/train_cofi.json: no 'mlflow_run_id'"),
        (
            lambda layout: fake_trained_model(layout, dataset_fingerprint="beef"),
            ModelError,
            r"{root}/records/train_cofi.json: the cofi model was trained on another dataset "
            r"\(fingerprint beef, {root}/data/raw/dataset.json has f00d\)",
        ),
        (
            lambda layout: (fake_trained_model(layout), tiny_movies(13).to_parquet(layout.raw_movies, index=False)),
            ModelError,
            r"{root}/models/cofi: trained on another dataset: its catalogue has 12 movies, {root}/data/raw/movies.parquet has 13",
        ),
        (
            lambda layout: pd.read_parquet(layout.test).head(0).to_parquet(layout.test, index=False),
            DataError,
            r"{root}/data/split/test.parquet: no rows",
        ),
        (lambda layout: layout.raw_meta.unlink(), DataError, r"{root}/data/raw/dataset.json: not found"),
    ],
    ids=["missing-folder", "no-run-id", "other-fingerprint", "other-catalogue", "empty-test", "no-dataset-json"],
)
def test_bad_inputs_are_one_clear_error_and_nothing_is_written(layout, prepare, error, message):
    prepare(layout)
    with pytest.raises(error, match=message.format(root=re.escape(str(layout.root)))):
        run(PARAMS, layout, trained=FAKE)
    assert not any(path.exists() for path in outputs(layout, ["cofi", "bias", "global_mean"]))


@pytest.mark.parametrize("name", list(TRAINED_MODELS))
def test_a_trained_model_without_a_recorded_dataset_is_an_error_telling_to_retrain(layout, name):
    fake_trained_model(layout, name=name, dataset_fingerprint=None)
    with pytest.raises(
        ModelError, match=rf"records/train_{name}.json: no 'dataset_fingerprint'.*retrain it \(dvc repro --force train_{name}\)"
    ):
        run(PARAMS, layout, trained={name: FAKE["cofi"]})
    assert not any(path.exists() for path in outputs(layout, [name, "bias", "global_mean"]))


def test_a_dataset_json_without_a_fingerprint_is_a_data_error(layout):
    fake_trained_model(layout)
    layout.raw_meta.write_text(json.dumps({key: value for key, value in DATASET.items() if key != "fingerprint"}))
    with pytest.raises(DataError, match="data/raw/dataset.json: needs a non-empty string 'fingerprint' \\(got None\\)"):
        run(PARAMS, layout, trained=FAKE)


def fake_ranking_model(layout: Layout, name: str = "cofi_ranking") -> str:
    """models/<name>: a small trained cofi_ranking model, with its training record and MLflow run."""
    from pipeline.config import CofiRankingParams
    from pipeline.models.cofi_ranking import CofiRankingModel

    data = training_data(pd.read_parquet(layout.train), tiny_movies())
    CofiRankingModel.fit(data, CofiRankingParams(num_features=3, iterations=3, positive_threshold=None)).save(layout.model_dir(name))
    with tracking.start_run(name, "eval-test", name, DATASET) as run_id:
        pass
    write_json(layout.training_record(name), {"mlflow_run_id": run_id, **dataset_identity(DATASET)})
    return run_id


def test_a_ranking_model_gets_ranking_metrics_only_from_its_raw_scores(layout, monkeypatch):
    from pipeline.models.cofi_ranking import CofiRankingModel

    fake_ranking_model(layout)
    ranked_with = []
    original = CofiRankingModel.with_ranking
    monkeypatch.setattr(CofiRankingModel, "with_ranking", lambda self, ranking: ranked_with.append(ranking) or original(self, ranking))
    run(PARAMS, layout, trained={"cofi_ranking": TRAINED_MODELS["cofi_ranking"]})
    evaluation = json.loads(layout.evaluation.read_text())
    assert list(evaluation) == ["cofi_ranking", *BASELINES]
    assert list(evaluation["cofi_ranking"]) == [k for k in RESULT_KEYS if k not in ("rmse", "mae")]
    assert ranked_with == [None]  # params.ranking (shrinkage 500) is for rating models
    assert not layout.predictions("cofi_ranking").exists()


def test_ease_beyond_max_movies_is_a_skipped_row_and_the_report_says_why(layout):
    params = PARAMS.model_copy(
        update={"evaluate": PARAMS.evaluate.model_copy(update={"ease": PARAMS.evaluate.ease.model_copy(update={"max_movies": 2})})}
    )
    run(params, layout, trained={})
    evaluation = json.loads(layout.evaluation.read_text())
    assert "ease" not in evaluation and "ndcg_at_k" in evaluation["genre_affinity"]  # metrics/: numbers only
    skipped = json.loads(layout.record_of(layout.evaluation).read_text())["ease"]
    assert list(skipped) == ["skipped"] and "more than evaluate.ease.max_movies 2" in skipped["skipped"]
    markdown = layout.report_md.read_text()
    assert "ease was skipped: ease: " in markdown and "| ease |" not in markdown
    assert "ease" not in set(tracking.search_runs("eval-test")["tags.model"])


def test_a_cold_item_split_offers_only_movies_without_a_training_rating(layout):
    from pipeline.evaluation.metrics import rated_in_train, top_k_items
    from pipeline.models.base import Catalogue

    ratings = tiny_ratings(n_users=10, per_user=9)
    train, test = split_ratings(ratings, "cold_item", 0.3, 0)
    train.to_parquet(layout.train, index=False)
    test.to_parquet(layout.test, index=False)
    params = PARAMS.model_copy(update={"split": PARAMS.split.model_copy(update={"strategy": "cold_item"})})
    run(params, layout, trained={})
    evaluation = json.loads(layout.evaluation.read_text())
    catalogue = Catalogue.from_movies(tiny_movies())
    warm = rated_in_train(train, catalogue)
    assert 0 < warm.sum() < len(catalogue)
    # every model lists only the cold movies: coverage is bounded by their share of the catalogue
    for name in BASELINES:
        assert evaluation[name]["coverage"] <= (~warm).sum() / len(catalogue) + 1e-12, name
    assert "only the movies nobody rated in train" in layout.report_md.read_text()
    popularity = BiasModel.fit(training_data(train, tiny_movies()), BiasParams())
    from pipeline.evaluation.metrics import seen_items

    lists = top_k_items(popularity.score_block, catalogue, seen_items(train, catalogue), test["user_id"].unique(), 3, excluded=warm)
    assert not set(lists["movie_id"]) & set(catalogue.movie_ids[warm])
    assert set(lists["movie_id"]) <= set(test["movie_id"]) | set(catalogue.movie_ids[~warm])


def four_trained_models(layout: Layout) -> dict[str, object]:
    """models/<name>, metrics/train_<name>.json and plots/<name>_<curve>.csv of the four trained
    models, fitted small on the layout's train split (their training runs are not in the store:
    evaluate logs into new runs); returns the models."""
    from pipeline.config import CofiParams, CofiRankingParams, ContentParams, ContentRankingParams
    from pipeline.features import build_features
    from pipeline.models.cofi import CofiModel
    from pipeline.models.cofi_ranking import CofiRankingModel
    from pipeline.models.content import ContentModel
    from pipeline.models.content_retrieval import ContentRankingModel

    train = pd.read_parquet(layout.train)
    data = training_data(train, tiny_movies(), features=build_features(train, tiny_movies(), 0.0))
    towers = {"user_layers": [4], "item_layers": [4], "embedding_dim": 3, "epochs": 2}
    models = {
        "cofi": CofiModel.fit(data, CofiParams(num_features=3, iterations=4)),
        "content": ContentModel.fit(data, ContentParams(**towers, validation_fraction=0.1, patience=None)),
        "cofi_ranking": CofiRankingModel.fit(data, CofiRankingParams(num_features=3, iterations=2, positive_threshold=None)),
        "content_ranking": ContentRankingModel.fit(data, ContentRankingParams(**towers, id_dim=2, batch_size=8, positive_threshold=3.0)),
    }
    layout.plots.mkdir(exist_ok=True)
    for name, model in models.items():
        model.save(layout.model_dir(name))
        write_json(layout.training_record(name), {"mlflow_run_id": "0" * 32, **dataset_identity(DATASET)})
        pd.DataFrame({"iteration": [0, 1, 2], "value": [3.0, 2.0, 1.8]}).to_csv(layout.learning_curve(name), index=False)
    return models


def test_the_report_counts_each_models_parameters_and_shows_its_curve_and_each_familys_movie_map(layout):
    models = four_trained_models(layout)
    run(PARAMS, layout)
    markdown = layout.report_md.read_text()
    for name, model in models.items():
        counts = model.parameters()
        cells = [f"{n:,}" for n in (counts.per_user, counts.per_movie, counts.shared, counts.total)]
        assert f"| {name} | {name.split('_')[0]} | " in markdown and " | ".join(cells) in markdown, name
    cofi = models["cofi"].parameters()
    assert (cofi.per_user, cofi.per_movie, cofi.shared) == (10 * 4, pd.read_parquet(layout.train)["movie_id"].nunique() * 3, 0)

    alts = set(re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', layout.report_html.read_text()))
    assert {f"{name} learning curve" for name in TRAINED_MODELS} <= alts
    assert {"cofi movie embedding map", "content movie embedding map"} <= alts


def test_the_report_shows_the_data_drift_that_validate_wrote(layout):
    from pipeline.data.drift import drift_figures

    run(PARAMS, layout, trained={})
    assert "Data drift" not in layout.report_md.read_text()  # validate wrote no metrics/drift.json
    before = {"n_ratings": 50, "n_users": 10, "newest_timestamp": 0, "rating_histogram": {"4": 50}}
    figures = drift_figures("files", before, {**before, "n_ratings": 60, "rating_histogram": {"4": 30, "5": 30}})
    records.write(layout.drift, layout.record_of(layout.drift), figures)
    run(PARAMS, layout, trained={})
    markdown, page = layout.report_md.read_text(), layout.report_html.read_text()
    assert "## Data drift since the previous accepted data" in markdown and "50 ratings of 10 users" in markdown
    assert "Data source files:" in markdown  # the source is in records/drift.json, the counts in metrics/drift.json
    assert "<h2>Data drift since the previous accepted data</h2>" in page and "total-variation distance 0.5000" in page
