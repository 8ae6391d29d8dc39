"""The `recsys` command: quick to start, one readable line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import STAGES, app
from pipeline.errors import data_error

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


def test_starting_the_cli_imports_no_heavy_library():
    """TensorFlow, MLflow and Great Expectations take seconds to import: only commands that need them do."""
    code = (
        "import sys, pipeline.cli\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'great_expectations', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_a_bad_params_file_is_one_error_line_and_exit_code_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("split:\n  test_size: 3\n")
    result = runner.invoke(app, ["split"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: params.yaml: split.test_size: Input should be less than 1 (got 3)"
    ]


def test_data_errors_name_file_column_count_and_examples():
    error = data_error("ratings.csv", "are out of scale", column="rating", count=2, examples=[7.0, -1.0])
    assert str(error) == "ratings.csv: column 'rating': 2 rows are out of scale (e.g. 7.0, -1.0)"
    assert str(data_error("movies.csv", "is empty")) == "movies.csv: is empty"
