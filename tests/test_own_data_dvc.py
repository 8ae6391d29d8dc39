"""Own files in data/own/ under DVC: ingest re-runs when their content changes, and only then.

(A database is not visible to DVC; that a forced ingest of an unchanged table writes the same bytes,
so that nothing after it goes out of date, is tested in tests/data/test_sql.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import COLUMNS, sample_tables
from tests.isolation import copy_repository, run_tool

pytestmark = pytest.mark.slow


def test_files_in_data_own_rerun_ingest_only_when_their_content_changes(tmp_path: Path):
    repo = copy_repository(tmp_path, {"data": {"source": "files", "columns": COLUMNS.model_dump()}})
    ratings, movies = sample_tables()
    ratings.to_csv(repo / "data/own/ratings.csv", index=False)
    movies.to_csv(repo / "data/own/movies.csv", index=False)
    assert "Running stage 'ingest'" in run_tool(repo, "dvc", "repro", "ingest").stdout
    assert json.loads((repo / "data/raw/dataset.json").read_text())["n_ratings"] == 48
    (repo / "data/own/ratings.csv").touch()  # a new mtime, the same bytes
    assert "up to date" in run_tool(repo, "dvc", "status", "ingest").stdout
    ratings.iloc[:40].to_csv(repo / "data/own/ratings.csv", index=False)
    assert "Running stage 'ingest'" in run_tool(repo, "dvc", "repro", "ingest").stdout
    assert json.loads((repo / "data/raw/dataset.json").read_text())["n_ratings"] == 40
