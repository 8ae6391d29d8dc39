"""`recsys`: the pipeline's stage commands (used by dvc.yaml) and the user commands.

Heavy libraries (TensorFlow, MLflow, Great Expectations) are imported inside the commands that
need them, so `recsys --help` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.errors import RecsysError

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
        params = load_params(params_file)
        importlib.import_module(module_name).run(params)

    guarded(action)


def _register_stage(name: str, module_name: str, help_text: str) -> None:
    def command(params: ParamsOption = Path("params.yaml")) -> None:
        _run_stage(module_name, params)

    command.__doc__ = help_text
    app.command(name=name, help=help_text, rich_help_panel="Pipeline stages")(command)


for _name, (_module, _help) in STAGES.items():
    _register_stage(_name, _module, _help)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
