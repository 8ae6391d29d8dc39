"""`recsys`: the pipeline's stage commands (used by dvc.yaml) and the user commands.

Heavy libraries (TensorFlow, MLflow, Great Expectations) are imported inside the commands that
need them, so `recsys --help` answers at once.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline import quiet
from pipeline.errors import RecsysError
from pipeline.evaluation.metric_table import BY_NAME as METRICS

app = typer.Typer(
    help="Train, track and compare collaborative filtering and content-based movie recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    verbose: Annotated[
        bool,
        typer.Option(
            quiet.VERBOSE_FLAG,
            help=f"show the libraries' own log lines and warnings (TensorFlow, MLflow, ...); also {quiet.VERBOSE_ENV}=1",
        ),
    ] = False,
) -> None:
    """The option is acted on in `main`, before any library is imported (see pipeline.quiet)."""


ParamsOption = Annotated[Path, typer.Option("--params", help="params file", show_default=True)]

# stage command -> module with run(params)
STAGES = {
    "ingest": ("pipeline.stages.ingest", "Read the configured source into data/raw/ (normalized schema)."),
    "validate": ("pipeline.stages.validate", "Check data/raw/ with Great Expectations; stop the pipeline on failure."),
    "split": ("pipeline.stages.split", "Divide ratings into data/split/{train,test}.parquet."),
    "features": ("pipeline.stages.features", "Compute user/movie features and scalers from train only."),
    "train-cofi": ("pipeline.stages.train_cofi", "Train collaborative filtering into models/cofi/ (MLflow run 'cofi-rating@<source>')."),
    "train-cofi-ranking": (
        "pipeline.stages.train_cofi_ranking",
        "Train collaborative filtering for top-N lists into models/cofi_ranking/ (MLflow run 'cofi-ranking@<source>').",
    ),
    "train-content": (
        "pipeline.stages.train_content",
        "Train the two-tower content model into models/content/ (MLflow run 'content-rating@<source>').",
    ),
    "train-content-ranking": (
        "pipeline.stages.train_content_ranking",
        "Train the content towers for top-N lists into models/content_ranking/ (MLflow run 'content-ranking@<source>').",
    ),
    "evaluate": ("pipeline.stages.evaluate", "Score both models and the baselines on the test split; write metrics, plots, report."),
    "promote": (
        "pipeline.stages.promote",
        "Register the trained models in MLflow; move alias 'champion' when the challenger wins on promote.metric "
        "(ranking models: promote.ranking_metric).",
    ),
    "recommend-batch": (
        "pipeline.stages.recommend",
        "Every training user's top-k (recommend.k) from the ranking model best on promote.ranking_metric "
        "into data/recommendations/top_k.parquet.",
    ),
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
        from pipeline.paths import DEFAULT_LAYOUT

        params = load_params(params_file)
        # too large for data.max_memory_gb: stop now; DVC runs every stage at the repository root
        check_stage_memory(module_name.rsplit(".", 1)[-1], params, DEFAULT_LAYOUT.raw_meta)
        importlib.import_module(module_name).run(params, layout=DEFAULT_LAYOUT)

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


def _show(frame: Any, column: str, score: Any, trained: Any, data_dir: Path, as_json: bool, heading: list[str], query: dict) -> None:
    """Print a recommend/similar answer with each movie's details, as a table or as JSON."""
    from pipeline import display

    details = display.read_details(trained.catalogue, trained.seen, data_dir)
    shown = display.with_details(frame.rename(columns={column: score.key}), score.key, details)
    typer.echo(display.as_json(shown, score, details, query) if as_json else display.as_text(shown, score, details, heading))


def _title_of(catalogue: Any, movie_id: int) -> str:
    return str(catalogue.titles[catalogue.index([movie_id])[0]])


ModelsDir = Annotated[Path, typer.Option("--models-dir", help="folder holding the trained models")]
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the pipeline's data folder (movies and features tables: year, genres, mean rating)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]


@app.command(rich_help_panel="Use the models")
def recommend(
    user: Annotated[int | None, typer.Option("--user", help="a user id from the training data")] = None,
    ratings: Annotated[
        str | None, typer.Option("--ratings", help="a new user's ratings: 'Toy Story (1995)=5,Heat (1995)=2' (cofi)")
    ] = None,
    genres: Annotated[str | None, typer.Option("--genres", help="a new user's genre tastes: 'Adventure=5,Fantasy=5' (content)")] = None,
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
    as_json: JsonOption = False,
    models_dir: ModelsDir = Path("models"),
    data_dir: DataDir = Path("data"),
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Top movies for a known user, for a new user's ratings (cofi) or genre tastes (content)."""
    chosen = [flag for flag, value in (("--user", user), ("--ratings", ratings), ("--genres", genres)) if value is not None]
    if len(chosen) != 1:
        fail("give exactly one of --user, --ratings, --genres")

    def action() -> None:
        from pipeline import display, serving
        from pipeline.models.loading import load_trained, model_for
        from pipeline.models.ranking import for_lists

        name, note = model_for(model, objective, models_dir)
        if note:
            typer.echo(note, err=True)
        trained = load_trained(name, models_dir)
        if not trained.predicts_ratings:
            trained, score = trained.with_ranking(None), display.RANKING_MODEL_SCORE
        elif raw:
            trained, score = trained.with_ranking(None), display.PREDICTED_STARS
        else:
            ranking = _ranking(params_file)
            trained, score = for_lists(trained, ranking), display.ranking_score(ranking)
        if user is not None:
            table = trained.recommend(user, n=n, exclude_seen=not include_seen)
            heading = [f"Top {n} for user {user} ({name} model; {len(trained.seen.of(user))} movies rated in training):"]
            query: dict[str, Any] = {"model": name, "user": user}
        elif ratings is not None:
            serving.require_new_user(trained, name, serving.RATINGS, label="--ratings", advice="use --model cofi")
            wanted = parse_assignments(ratings, "--ratings")
            resolved = [(key, _movie_id(trained.catalogue, key)) for key in wanted]
            table = serving.new_user_list(trained, name, n, ratings={movie: wanted[key] for key, movie in resolved})
            rated = [
                {"typed": key, "movie_id": movie, "title": _title_of(trained.catalogue, movie), "rating": wanted[key]}
                for key, movie in resolved
            ]
            read = [f"  {r['title']} [id {r['movie_id']}] = {r['rating']:g}" for r in rated]
            heading = ["Ratings read:", *read, f"Top {n} for these ratings ({name} model):"]
            query = {"model": name, "ratings": rated}
        else:
            serving.require_new_user(trained, name, serving.GENRES, label="--genres", advice="use --model content")
            tastes = parse_assignments(genres or "", "--genres")
            table = serving.new_user_list(trained, name, n, genres=tastes)
            shown_tastes = ", ".join(f"{k}={v:g}" for k, v in tastes.items())
            heading = [f"Top {n} for genre tastes {shown_tastes} ({name} model):"]
            query = {"model": name, "genres": tastes}
        _show(table, "score", score, trained, data_dir, as_json, heading, query)

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
    as_json: JsonOption = False,
    models_dir: ModelsDir = Path("models"),
    data_dir: DataDir = Path("data"),
) -> None:
    """Movies closest to a movie in the content model's embedding space."""

    def action() -> None:
        from pipeline import display
        from pipeline.models.content import ContentModel
        from pipeline.models.loading import load_trained

        trained = load_trained("content", models_dir)
        assert isinstance(trained, ContentModel), "the content model is a ContentModel (loading.TRAINED_MODELS)"
        movie = _movie_id(trained.catalogue, title)
        resolved = _title_of(trained.catalogue, movie)
        heading = [f"Closest to {resolved} [id {movie}] in the content model's embedding space:"]
        query = {"model": "content", "typed": title, "movie_id": movie, "title": resolved}
        _show(trained.similar(movie, n=n), "distance", display.DISTANCE, trained, data_dir, as_json, heading, query)

    guarded(action)


@app.command(rich_help_panel="Use the models")
def export(
    csv: Annotated[Path | None, typer.Option("--csv", help="write the lists to this CSV file (replaced as a whole)")] = None,
    sql: Annotated[
        bool,
        typer.Option("--sql", help="replace table recommend.table in the database whose URL is in the variable data.sql.url_env"),
    ] = False,
    data_dir: DataDir = Path("data"),
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Write data/recommendations/top_k.parquet (stage recommend) to a CSV file or into the SQL source's database."""
    if (csv is not None) == sql:
        fail("give exactly one of --csv PATH, --sql")

    def action() -> None:
        from pipeline import export as exporting
        from pipeline.config import Params, load_params

        params = load_params(params_file) if params_file.is_file() else Params()
        top_k = exporting.open_top_k(data_dir)
        if csv is not None:
            rows, target = exporting.to_csv(top_k, csv), str(csv)
        else:
            rows, url = exporting.to_sql(top_k, params.data.sql, params.recommend.table)
            target = f"table {params.recommend.table} of {url}"
        typer.echo(f"exported {rows:,} rows of {top_k.file} to {target}")

    guarded(action)


@app.command(rich_help_panel="Use the models")
def compare(
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment (default: mlflow.experiment of params.yaml)")
    ] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="how many of the most recent (matching) runs")] = 20,
    by: Annotated[str, typer.Option("--by", help=f"sort on a metric: {', '.join(METRICS)} (or its column label, e.g. nDCG@k)")] = "rmse",
    source: Annotated[str | None, typer.Option("--source", help="only runs on this data source, e.g. ml-latest-small")] = None,
    split: Annotated[str | None, typer.Option("--split", help="only runs on this split strategy, e.g. temporal")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the groups as JSON (for scripts)")] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Recent MLflow runs per data source and split: test metrics and the params that differ, best first."""

    def action() -> None:
        from pipeline.config import MlflowParams, load_params
        from pipeline.evaluation.compare import as_json as json_text
        from pipeline.evaluation.compare import compare_runs, render

        name = experiment or (load_params(params).mlflow if params.is_file() else MlflowParams()).experiment
        groups = compare_runs(name, last, by, source, split)
        if as_json:
            typer.echo(json_text(groups, name, by))
        elif not groups:
            filters = " ".join(f"{flag} {value}" for flag, value in (("--source", source), ("--split", split)) if value)
            typer.echo(f"no runs in MLflow experiment '{name}'" + (f" matching {filters}" if filters else ""))
        else:
            typer.echo(render(groups, by))

    guarded(action)


# Every stage is a short process that imports large libraries (TensorFlow, MLflow, pandas, Great
# Expectations) and exits. At CPython's default first threshold (a collection per 700 new objects) the
# cycle collector walks those libraries' objects again and again while they import, and interpreter
# exit runs one more full collection over all of them: 1-3 s of each stage. Collecting per 10,000 new
# objects and freezing what is left at exit (the process frees it all) saves that at the same peak memory.
GC_FIRST_THRESHOLD = 10_000


def main() -> None:
    """The `recsys` console command: quiet the libraries unless asked not to, then run the command."""
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])
    quiet.configure(quiet.verbose_requested(sys.argv[1:], os.environ))
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
