"""Stage `evaluate`: the trained models and the baselines on the same test split.

Reads data/split/{train,test}.parquet, data/raw/{movies.parquet,dataset.json}, models/<name>/,
records/train_<name>.json (training run, dataset), the learning curves plots/<name>_<cost|loss>.csv
and validate's drift figures; writes metrics/evaluation.json (the numbers), records/evaluation.json
(why a baseline was skipped), plots/predictions_<model>.csv, plots/error_by_activity.csv and
reports/report.{html,md} together (nothing partial on error). The report also counts each trained
model's parameters and maps each family's movie vectors in 2-D. Metrics, the evaluation settings
(params evaluate.k, .relevance_threshold, .cold_threshold) and the test split (an input dataset) go
into each trained model's MLflow run; each baseline gets a run of its own, `<baseline>-<objective>@<source>`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import records
from pipeline.choices import family_objective
from pipeline.config import Params
from pipeline.data.schema import MOVIE, RATING, USER
from pipeline.errors import DataError, ModelError, ModelSkipped
from pipeline.evaluation.metrics import (
    PREDICTION,
    cold_mask,
    error_by_activity,
    evaluate_model,
    flat_metrics,
    scored_frame,
    seen_items,
    train_counts,
)
from pipeline.evaluation.report import MovieMap, html_report, markdown_report, movie_map
from pipeline.io import atomic_outputs
from pipeline.models.base import Catalogue, CountsParameters, EmbedsMovies, ParameterCounts, Recommender, TrainingData
from pipeline.models.baselines import BiasModel, GlobalMeanModel, PopularityModel
from pipeline.models.ease import EaseModel
from pipeline.models.genre_affinity import GenreAffinityModel
from pipeline.models.loading import FAMILIES, TRAINED_MODELS, class_at
from pipeline.models.ranking import for_lists
from pipeline.paths import Layout
from pipeline.stages.inputs import check_trained_on, read_ratings, read_training_data, training_record


@dataclass(frozen=True)
class Skipped:
    """A baseline that was not fitted, and why (its evaluation.json row)."""

    reason: str


def training_info(name: str, layout: Layout) -> dict[str, Any]:
    """records/train_<name>.json, which must hold the training run's `mlflow_run_id`."""
    info = training_record(name, layout)
    if not info.get("mlflow_run_id"):
        raise ModelError(f"{layout.training_record(name)}: no 'mlflow_run_id'; retrain the {name} model (dvc repro --force train_{name})")
    return info


def check_catalogue(model: Recommender, catalogue: Catalogue, folder: Path, movies_file: Path) -> None:
    """The model's catalogue must be the movies of data/raw/movies.parquet, else it was trained on other data."""
    ours = model.catalogue
    same = len(ours) == len(catalogue) and np.array_equal(ours.movie_ids, catalogue.movie_ids)
    if not same:
        unknown = np.setdiff1d(ours.movie_ids, catalogue.movie_ids)
        example = f" (e.g. movie_id {unknown[0]} is not in {movies_file})" if len(unknown) else ""
        raise ModelError(
            f"{folder}: trained on another dataset: its catalogue has {len(ours)} movies, "
            f"{movies_file} has {len(catalogue)}{example}; retrain it (dvc repro)"
        )


def load_trained(name: str, loader: str, catalogue: Catalogue, dataset: Mapping[str, Any], layout: Layout) -> tuple[Recommender, str]:
    """(model, its training run id), or a ModelError naming the folder that is missing or mismatched."""
    folder = layout.model_dir(name)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found; train it first (dvc repro train_{name})")
    info = training_info(name, layout)
    check_trained_on(info, dataset, name, layout)
    model = class_at(loader).load(folder)
    check_catalogue(model, catalogue, folder, layout.raw_movies)
    return model, str(info["mlflow_run_id"])


def fit_baselines(data: TrainingData, params: Params) -> dict[str, Recommender | Skipped]:
    """Every baseline, or a Skipped reason for one that cannot be fitted within its limits (EASE's
    dense movies x movies matrix beyond evaluate.ease.max_movies)."""
    cfg = params.evaluate
    fits: dict[str, Callable[[], Recommender]] = {
        "bias": lambda: BiasModel.fit(data, cfg.bias),
        "global_mean": lambda: GlobalMeanModel.fit(data),
        "popularity": lambda: PopularityModel.fit(data),
        "ease": lambda: EaseModel.fit(data, cfg.ease),
        "genre_affinity": lambda: GenreAffinityModel.fit(data, cfg.genre_affinity),
    }
    baselines: dict[str, Recommender | Skipped] = {}
    for name, fit in fits.items():
        try:
            baselines[name] = fit()
        except ModelSkipped as exc:
            print(f"evaluate: {name} skipped: {exc}")
            baselines[name] = Skipped(str(exc))
    return baselines


BASELINE_SECTIONS = ("bias", "ease", "genre_affinity")  # baselines with their own evaluate.<name> section


def baseline_params(name: str, params: Params) -> dict[str, Any]:
    logged: dict[str, Any] = {"evaluate": params.evaluate.model_dump(exclude=set(BASELINE_SECTIONS))}
    if name in BASELINE_SECTIONS:
        logged[name] = getattr(params.evaluate, name).model_dump()
    return logged


def candidates_text(strategy: str) -> str:
    if strategy == "cold_item":
        return (
            "candidates are only the movies nobody rated in train (a new-releases shelf: the test movies are "
            "held out, so every movie with a training rating is excluded for every model and baseline)"
        )
    return "candidates are all movies not rated in train"


def protocol_text(params: Params, n_train: int, n_test: int, dataset: Mapping[str, Any]) -> str:
    cfg = params.evaluate
    return (
        f"Data: {dataset.get('source', 'unknown')} split {params.split.strategy} "
        f"({n_train:,} train / {n_test:,} test ratings). Ranking: for each user, {candidates_text(params.split.strategy)}; "
        f"relevant = test rating >= {cfg.relevance_threshold}; users with at least one "
        f"relevant test movie are ranked and metrics averaged over them, @{cfg.k}. Cold: test ratings whose "
        f"user or movie has fewer than {cfg.cold_threshold} training ratings. The rating models (cofi, content) rank by "
        f"scores shrunk toward the user's mean by the movie's training support (ranking.shrinkage "
        f"{params.ranking.shrinkage:g}, popularity_weight {params.ranking.popularity_weight:g}, min_support "
        f"{params.ranking.min_support}), as `recsys recommend` does; the ranking models (cofi_ranking) and the "
        f"baselines rank by their raw scores."
    )


def read_inputs(layout: Layout) -> tuple[TrainingData, pd.DataFrame, dict[str, Any]]:
    """(train ratings, movies and scale, test ratings, dataset.json)."""
    data, meta = read_training_data(layout)
    layout.require(layout.test)
    test = read_ratings(layout.test)
    if len(test) == 0:
        raise DataError(f"{layout.test}: no rows; the test split is empty, nothing to evaluate")
    if len(data.ratings) == 0:
        raise DataError(f"{layout.train}: no rows; nothing to fit the baselines on")
    return data, test, meta


def plot_sample(n_test: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of the plotted test ratings (the same rows for every model)."""
    if n_test <= size:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=size, replace=False))


def evaluate_all(
    models: Mapping[str, Recommender | Skipped], train: pd.DataFrame, test: pd.DataFrame, catalogue: Catalogue, params: Params
) -> tuple[dict[str, Any], dict[str, pd.DataFrame], pd.DataFrame]:
    """(evaluation.json content, predictions sample per rating model, error by activity of every rating model).

    A skipped model gets the row {"skipped": reason} instead of metrics (on disk in records/evaluation.json)."""
    cfg = params.evaluate
    seen = seen_items(train, catalogue)
    sample = plot_sample(len(test), cfg.plot_sample, cfg.seed)
    user_counts = train_counts(test[USER].to_numpy(), train[USER].to_numpy())
    cold = cold_mask(test, train, cfg.cold_threshold)  # the same for every model: counted once
    evaluation: dict[str, Any] = {}
    samples: dict[str, pd.DataFrame] = {}
    activity = []
    for name, model in models.items():
        if isinstance(model, Skipped):
            evaluation[name] = {"skipped": model.reason}
            continue
        result, predictions = evaluate_model(
            model,
            train,
            test,
            seen,
            k=cfg.k,
            relevance_threshold=cfg.relevance_threshold,
            cold_threshold=cfg.cold_threshold,
            cold=cold,
            new_movies_only=params.split.strategy == "cold_item",
        )
        evaluation[name] = result
        if predictions is None:
            continue
        scored = scored_frame(test, predictions)
        samples[name] = pd.DataFrame({"actual": scored[RATING].to_numpy()[sample], "predicted": scored[PREDICTION].to_numpy()[sample]})
        activity.append(error_by_activity(scored, user_counts).assign(model=name))
    columns = ["model", "activity", "n_test_ratings", "rmse", "mae"]
    table = pd.concat(activity, ignore_index=True)[columns] if activity else pd.DataFrame(columns=columns)
    return evaluation, samples, table


def read_curves(names: list[str], layout: Layout) -> dict[str, pd.DataFrame]:
    """The learning curves the training stages wrote, for the models that have one."""
    return {name: pd.read_csv(layout.learning_curve(name)) for name in names if layout.learning_curve(name).is_file()}


def parameter_counts(models: Mapping[str, Recommender]) -> dict[str, ParameterCounts]:
    """Each trained model's learned numbers: per user, per movie, shared."""
    return {name: model.parameters() for name, model in models.items() if isinstance(model, CountsParameters)}


MAPPED = {"cofi": "x_i", "content": "v_m"}  # the model drawn on each family's embedding map, and its movie vectors' name


def movie_maps(models: Mapping[str, Recommender], data: TrainingData) -> list[MovieMap]:
    """A 2-D map of the movie vectors of each MAPPED model that was loaded."""
    counts = data.ratings[MOVIE].value_counts()
    maps: list[MovieMap] = []
    for name, symbol in MAPPED.items():
        model = models.get(name)
        if isinstance(model, EmbedsMovies) and (found := movie_map(name, symbol, *model.embedded_movies(), data.movies, counts)):
            maps.append(found)
    return maps


EVALUATION_SETTINGS = ("k", "relevance_threshold", "cold_threshold")


def evaluation_settings(params: Params) -> dict[str, Any]:
    """The protocol's settings, logged as params evaluate.<key> of every evaluated run."""
    return {"evaluate": {key: getattr(params.evaluate, key) for key in EVALUATION_SETTINGS}}


def identity(name: str, model: Recommender | Skipped) -> tuple[str, str]:
    """(family, objective) of a trained model, or of a baseline: its own name, and rating when it predicts ratings."""
    if name in TRAINED_MODELS:
        return family_objective(name)
    return name, "rating" if getattr(model, "predicts_ratings", True) else "ranking"


def log_to_mlflow(
    evaluation: Mapping[str, Any],
    models: Mapping[str, Recommender | Skipped],
    run_ids: Mapping[str, str],
    params: Params,
    dataset: Mapping[str, Any],
    splits: Mapping[str, pd.DataFrame],
) -> None:
    """Metrics, settings and the test split into each trained model's run; a new run per baseline (same
    experiment). A training run already evaluated with other settings (MLflow keeps a param's first
    value) gets a new run nested under it, holding its params and the new evaluation."""
    from pipeline import tracking

    experiment, strategy = params.mlflow.experiment, params.split.strategy
    tracking.configure(experiment)
    settings = evaluation_settings(params)

    def log_evaluation(run_id: str, metrics: Mapping[str, float]) -> None:
        tracking.log_params(settings, run_id=run_id)
        tracking.log_split("test", splits["test"], dataset, strategy, run_id=run_id)
        tracking.log_metrics(metrics, run_id=run_id)

    for name, result in evaluation.items():
        if "skipped" in result:
            continue
        metrics, run_id = flat_metrics(result), run_ids.get(name)
        family, objective = identity(name, models[name])
        run_name = tracking.run_name(family, objective, str(dataset.get("source", "unknown")))
        parent, logged = None, baseline_params(name, params)
        if run_id and tracking.run_exists(run_id):
            changed = tracking.changed_params(run_id, settings)
            if not changed:
                log_evaluation(run_id, metrics)
                continue
            shown = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
            print(f"evaluate: MLflow run {run_id} of {name} was evaluated with other settings ({shown}); logging into a new run under it")
            parent, logged = run_id, {k: v for k, v in tracking.run_params(run_id).items() if not k.startswith("evaluate.")}
        elif run_id:
            print(f"evaluate: MLflow run {run_id} of {name} is not in this store; logging into a new run")
        with tracking.start_run(run_name, experiment, family, dataset, objective, model=name, parent_run_id=parent) as new_run:
            tracking.log_params({**logged, **tracking.identity_params(family, objective, dataset, strategy)})
            tracking.log_split("train", splits["train"], dataset, strategy)
            log_evaluation(new_run, metrics)


def read_drift(layout: Layout) -> dict[str, Any] | None:
    """validate's drift figures (metrics/drift.json with its record), for the report's data-drift
    section; None when validate wrote none."""
    if not layout.drift.is_file():
        return None
    record = layout.record_of(layout.drift)
    layout.require(record)
    return records.read(layout.drift, record)


def run(params: Params, layout: Layout, trained: Mapping[str, str] = TRAINED_MODELS) -> None:
    """`trained` maps model name -> loader ("module:Class"); tests pass their own."""
    data, test, dataset = read_inputs(layout)
    train, catalogue = data.ratings, Catalogue.from_movies(data.movies)
    loaded: dict[str, Recommender] = {}
    run_ids: dict[str, str] = {}
    for name, loader in trained.items():
        model, run_ids[name] = load_trained(name, loader, catalogue, dataset, layout)
        # rank exactly as `recsys recommend` does (a rating model by params.ranking); predict() is unaffected
        loaded[name] = for_lists(model, params.ranking)
    models: dict[str, Recommender | Skipped] = {**loaded, **fit_baselines(data, params)}

    evaluation, samples, activity = evaluate_all(models, train, test, catalogue, params)
    protocol = protocol_text(params, len(train), len(test), dataset)
    k = params.evaluate.k
    parameters = parameter_counts(loaded)
    drift = read_drift(layout)
    markdown = markdown_report(evaluation, k, protocol, FAMILIES, parameters, drift=drift)
    curves = read_curves(list(trained), layout)
    page = html_report(evaluation, k, protocol, curves, activity, FAMILIES, parameters, movie_maps(loaded, data), drift=drift)

    record = layout.record_of(layout.evaluation)
    finals = [layout.evaluation, record, layout.error_by_activity, layout.report_html, layout.report_md, *map(layout.predictions, samples)]
    with atomic_outputs(*finals) as tmps:
        out = dict(zip(finals, tmps, strict=True))
        records.write(out[layout.evaluation], out[record], evaluation)
        activity.to_csv(out[layout.error_by_activity], index=False)
        out[layout.report_html].write_text(page, encoding="utf-8")
        out[layout.report_md].write_text(markdown, encoding="utf-8")
        for name, sample in samples.items():
            sample.to_csv(out[layout.predictions(name)], index=False, float_format="%.4f")
        log_to_mlflow(evaluation, models, run_ids, params, dataset, {"train": train, "test": test})
    print(markdown)
