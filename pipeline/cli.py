"""`recsys`: the pipeline's stage commands (used by dvc.yaml) and the user commands.

Heavy libraries (TensorFlow, MLflow, Great Expectations) are imported inside the commands that
need them, so `recsys --help` answers at once.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.errors import RecsysError
from pipeline.evaluation.metric_table import BY_NAME as METRICS

app = typer.Typer(
    help="Train, track and compare collaborative filtering and content-based movie recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="params file", show_default=True)]

# stage command -> module with run(params)
STAGES = {
    "ingest": ("pipeline.stages.ingest", "Read the configured source into data/raw/ (normalized schema)."),
    "validate": ("pipeline.stages.validate", "Check data/raw/ with Great Expectations; stop the pipeline on failure."),
    "split": ("pipeline.stages.split", "Divide ratings into data/split/{train,test}.parquet."),
    "features": ("pipeline.stages.features", "Compute user/movie features and scalers from train only."),
    "train-cofi": ("pipeline.stages.train_cofi", "Train collaborative filtering into models/cofi/ (MLflow run 'cofi')."),
    "train-cofi-ranking": (
        "pipeline.stages.train_cofi_ranking",
        "Train collaborative filtering for top-N lists into models/cofi_ranking/ (MLflow run 'cofi_ranking').",
    ),
    "train-content": ("pipeline.stages.train_content", "Train the two-tower content model into models/content/ (MLflow run 'content')."),
    "evaluate": ("pipeline.stages.evaluate", "Score both models and the baselines on the test split; write metrics, plots, report."),
    "promote": ("pipeline.stages.promote", "Register the trained models in MLflow; move alias 'champion' when the challenger wins on promote.metric (ranking models: promote.ranking_metric)."),
}


def fail(message: str) -> None:
    """Print one error line and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def guarded(action: Callable[[], Any]) -> Any:
    """Run `action`, turning a RecsysError into one readable line and exit code 1."""
    try:
        return action()
    except RecsysError as exc:
        fail(str(exc))


def _run_stage(module_name: str, params_file: Path) -> None:
    from pipeline.config import load_params

    def action() -> None:
        from pipeline.memory import check_stage_memory

        params = load_params(params_file)
        check_stage_memory(module_name.rsplit(".", 1)[-1], params)  # too large for data.max_memory_gb: stop now
        importlib.import_module(module_name).run(params)

    guarded(action)


def _register_stage(name: str, module_name: str, help_text: str) -> None:
    def command(params: ParamsOption = Path("params.yaml")) -> None:
        _run_stage(module_name, params)

    command.__doc__ = help_text
    app.command(name=name, help=help_text, rich_help_panel="Pipeline stages")(command)


for _name, (_module, _help) in STAGES.items():
    _register_stage(_name, _module, _help)


_PAIR = re.compile(r"\s*(?P<key>[^=]+?)\s*=\s*(?P<value>-?[0-9]+(?:\.[0-9]+)?)\s*(?:[,;]|$)")


def parse_assignments(text: str, what: str) -> dict[str, float]:
    """'Toy Story (1995)=5, Heat (1995)=2' -> {'Toy Story (1995)': 5.0, 'Heat (1995)': 2.0}.

    Keys may contain commas ("Shawshank Redemption, The (1994)=5"): a pair ends at "=number".
    """
    pairs, position = {}, 0
    for match in _PAIR.finditer(text):
        if match.start() != position:
            break
        pairs[match["key"]] = float(match["value"])
        position = match.end()
    if not pairs or position != len(text):
        raise RecsysError(f"{what}: expected 'name=value, name=value' (e.g. 'Toy Story (1995)=5'), got {text!r}")
    return pairs


def _print_table(frame: Any, score_label: str) -> None:
    if frame.empty:
        typer.echo("(nothing to recommend)")
        return
    shown = frame.rename(columns={"score": score_label}).reset_index(drop=True)
    shown.index = shown.index + 1
    typer.echo(shown.to_string(float_format=lambda v: f"{v:.3f}"))


ModelsDir = Annotated[Path, typer.Option("--models-dir", help="folder holding the trained models")]


@app.command(rich_help_panel="Use the models")
def recommend(
    user: Annotated[int | None, typer.Option("--user", help="a user id from the training data")] = None,
    ratings: Annotated[
        str | None, typer.Option("--ratings", help="a new user's ratings: 'Toy Story (1995)=5,Heat (1995)=2' (cofi)")
    ] = None,
    genres: Annotated[
        str | None, typer.Option("--genres", help="a new user's genre tastes: 'Adventure=5,Fantasy=5' (content)")
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="how many movies")] = 10,
    model: Annotated[str, typer.Option("--model", help="model family: cofi or content")] = "cofi",
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="ranking: the family's model trained for top-N lists (e.g. cofi_ranking), when trained; rating: the one trained on stars",
        ),
    ] = "ranking",
    include_seen: Annotated[bool, typer.Option("--include-seen", help="also list movies the user rated")] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="a rating model: rank by predicted rating alone, without params.yaml's `ranking` adjustment")
    ] = False,
    models_dir: ModelsDir = Path("models"),
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Top movies for a known user, for a new user's ratings (cofi) or genre tastes (content)."""
    chosen = [flag for flag, value in (("--user", user), ("--ratings", ratings), ("--genres", genres)) if value is not None]
    if len(chosen) != 1:
        fail("give exactly one of --user, --ratings, --genres")

    def action() -> None:
        from pipeline.models.base import RecommendsForGenres, RecommendsForRatings
        from pipeline.models.loading import load_trained, model_for
        from pipeline.models.ranking import for_lists

        name, note = model_for(model, objective, models_dir)
        if note:
            typer.echo(note, err=True)
        trained = load_trained(name, models_dir)
        trained = trained.with_ranking(None) if raw else for_lists(trained, _ranking(params_file))
        if user is not None:
            table = trained.recommend(user, n=n, exclude_seen=not include_seen)
        elif ratings is not None:
            if not isinstance(trained, RecommendsForRatings):
                raise RecsysError(f"--ratings: the {name} model cannot fit a new user from ratings; use --model cofi")
            wanted = parse_assignments(ratings, "--ratings")
            by_movie = {_movie_id(trained.catalogue, key): value for key, value in wanted.items()}
            table = trained.recommend_for_ratings(by_movie, n=n)
        else:
            if not isinstance(trained, RecommendsForGenres):
                raise RecsysError(f"--genres: the {name} model cannot describe a new user by genres; use --model content")
            table = trained.recommend_for_genres(parse_assignments(genres or "", "--genres"), n=n)
        _print_table(table, "predicted rating" if raw and trained.predicts_ratings else "score")

    guarded(action)


def _ranking(params_file: Path) -> Any:
    """params.yaml's `ranking` section (the evaluate stage ranks with it too); defaults without a file."""
    from pipeline.config import Params, load_params

    return (load_params(params_file) if params_file.is_file() else Params()).ranking


def _movie_id(catalogue: Any, key: str) -> int:
    """A movie id typed as a number, or a title resolved against the catalogue."""
    from pipeline.titles import resolve_title

    if key.isdigit() and int(key) in set(catalogue.movie_ids.tolist()):
        return int(key)
    return resolve_title(key, catalogue.movie_ids, catalogue.titles)


@app.command(rich_help_panel="Use the models")
def similar(
    title: Annotated[str, typer.Argument(help="a movie title, e.g. 'Toy Story (1995)' (case and year optional)")],
    n: Annotated[int, typer.Option("-n", min=1, help="how many movies")] = 10,
    models_dir: ModelsDir = Path("models"),
) -> None:
    """Movies closest to a movie in the content model's embedding space."""

    def action() -> None:
        from pipeline.models.loading import load_trained

        trained = load_trained("content", models_dir)
        _print_table(trained.similar(_movie_id(trained.catalogue, title), n=n), "distance")

    guarded(action)


@app.command(rich_help_panel="Use the models")
def compare(
    experiment: Annotated[str | None, typer.Option("--experiment", help="MLflow experiment (default: mlflow.experiment of params.yaml)")] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="how many of the most recent runs")] = 20,
    by: Annotated[str, typer.Option("--by", help=f"sort on a metric: {', '.join(METRICS)} (or its column label, e.g. nDCG@k)")] = "rmse",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Recent MLflow runs with their key params and test metrics, best first."""

    def action() -> None:
        from pipeline.config import MlflowParams, load_params
        from pipeline.evaluation.compare import compare_runs

        name = experiment or (load_params(params).mlflow if params.is_file() else MlflowParams()).experiment
        table = compare_runs(name, last, by)
        if table.empty:
            typer.echo(f"no runs in MLflow experiment '{name}'")
            return
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))

    guarded(action)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
