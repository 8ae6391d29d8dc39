"""The same data through every source gives the same metrics: ml-latest-small read as a MovieLens
release, then as a team's own files (CSV with renamed columns; integer ids, then string ids), then
from a PostgreSQL database (string ids, renamed columns).

    .venv/bin/python benchmarks/bench_own_data.py --mirror <folder holding ml-latest-small/>
    .venv/bin/python benchmarks/bench_own_data.py --mirror <folder> --sources ml-latest-small files-int   # a subset

Each source runs the stages ingest .. evaluate (`recsys <stage>`, as dvc.yaml runs them) with the
project's default params in its own copy of the committed tree (your data/, params.yaml and
mlflow.db are untouched), then the table compares metrics/evaluation.json per model with the
MovieLens run. PostgreSQL: a throw-away server from Debian's binaries (initdb, pg_ctl), as the
tests start it. With string ids each id becomes a 53-bit hash (pipeline/data/ids.py), so users and
movies are indexed in another order: models whose result depends on that order (random
initialisation per row, ties broken by index) agree within noise, not to the last digit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("ingest", "validate", "split", "features", "train-cofi", "train-content")
STAGES += ("train-cofi-ranking", "train-content-ranking", "evaluate")
METRICS = ("rmse", "ndcg_at_k", "precision_at_k", "coverage")
RENAMED = {"user": "member", "movie": "item", "rating": "stars", "timestamp": "rated_at", "title": "name", "genres": "tags"}
PASSWORD = "bench-secret"


def movielens_tables(mirror: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.csv and movies.csv as the release has them (file order kept)."""
    folder = mirror / "ml-latest-small"
    return pd.read_csv(folder / "ratings.csv"), pd.read_csv(folder / "movies.csv", keep_default_na=False)


def own_tables(mirror: Path, string_ids: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The release's tables with a team's column names (and ids such as "member-17", "item-1")."""
    ratings, movies = movielens_tables(mirror)
    if string_ids:
        ratings["userId"] = "member-" + ratings["userId"].astype(str)
        ratings["movieId"] = "item-" + ratings["movieId"].astype(str)
        movies["movieId"] = "item-" + movies["movieId"].astype(str)
    ratings.columns = [RENAMED["user"], RENAMED["movie"], RENAMED["rating"], RENAMED["timestamp"]]
    movies.columns = [RENAMED["movie"], RENAMED["title"], RENAMED["genres"]]
    return ratings, movies


def own_columns() -> dict[str, Any]:
    return {**RENAMED, "year": None}


def workspace(root: Path) -> Path:
    """A copy of the committed tree (git archive of HEAD)."""
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def set_params(root: Path, data: dict[str, Any]) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"].update(data)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run_pipeline(root: Path, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    recsys = str(Path(sys.executable).parent / "recsys")
    start = time.perf_counter()
    for stage in STAGES:
        done = subprocess.run([recsys, stage], cwd=root, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{root.name}: recsys {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads((root / "metrics" / "evaluation.json").read_text()), time.perf_counter() - start


@contextmanager
def postgres_with(ratings: pd.DataFrame, movies: pd.DataFrame) -> Iterator[str]:
    """A throw-away PostgreSQL server holding the tables `ratings` and `movies`; yields its URL."""
    import sqlalchemy

    from tests.postgres import postgres_server

    with postgres_server(PASSWORD) as server:
        engine = sqlalchemy.create_engine(server.url())
        with engine.begin() as connection:
            ratings.to_sql("ratings", connection, index=False, chunksize=20_000)
            movies.to_sql("movies", connection, index=False)
        engine.dispose()
        yield server.url()


def prepare(name: str, root: Path, mirror: Path) -> Callable[[], Any]:
    """Write the source's files and params into the workspace; returns the context the run needs."""
    if name == "ml-latest-small":
        set_params(root, {"source": "ml-latest-small", "mirror": str(mirror)})
        return nullcontext
    string_ids = name != "files-int"
    ratings, movies = own_tables(mirror, string_ids)
    common = {"columns": own_columns(), "rating_scale": {"min": 0.5, "max": 5.0, "step": 0.5}, "genre_separator": "|"}
    if name.startswith("files"):
        own = root / "data" / "own"
        own.mkdir(parents=True, exist_ok=True)
        ratings.to_csv(own / "ratings.csv", index=False)
        movies.to_csv(own / "movies.csv", index=False)
        set_params(root, {"source": "files", "files": {"ratings": "data/own/ratings.csv", "movies": "data/own/movies.csv"}, **common})
        return nullcontext
    cols = RENAMED
    queries = {
        "ratings_query": f"SELECT {cols['user']}, {cols['movie']}, {cols['rating']}, {cols['timestamp']} FROM ratings",
        "movies_query": f"SELECT {cols['movie']}, {cols['title']}, {cols['genres']} FROM movies",
    }
    set_params(root, {"source": "sql", "sql": {"url_env": "RECSYS_DATABASE_URL", **queries, "connect_timeout_seconds": 10.0}, **common})
    return lambda: postgres_with(ratings, movies)


def table(results: dict[str, dict[str, Any]], seconds: dict[str, float]) -> str:
    reference = results.get("ml-latest-small")
    first = next(iter(results.values()))
    models = [name for name, row in first.items() if isinstance(row, dict) and "ndcg_at_k" in row]
    header = "| source | model | " + " | ".join(METRICS) + " | largest difference from ml-latest-small |"
    lines = [header, "|" + "---|" * (len(METRICS) + 3)]
    for source, result in results.items():
        for model in models:
            row = result[model]
            values = [row.get(metric) for metric in METRICS]
            cells = ["-" if v is None else f"{v:.4f}" for v in values]
            if reference is None or source == "ml-latest-small":
                gap = "-"
            else:
                ref = reference[model]
                gaps = [abs(row[m] - ref[m]) for m in METRICS if row.get(m) is not None and ref.get(m) is not None]
                gap = f"{max(gaps):.2g}" if gaps else "-"
            lines.append(f"| {source} | {model} | " + " | ".join(cells) + f" | {gap} |")
    lines.append("")
    lines.append("pipeline seconds (ingest .. evaluate): " + ", ".join(f"{s} {t:.0f}" for s, t in seconds.items()))
    return "\n".join(lines)


SOURCES = ("ml-latest-small", "files-int", "files-string", "postgres-string")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=os.environ.get("RECSYS_DATA_MIRROR"), help="folder holding ml-latest-small/")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    args = parser.parse_args()
    if args.mirror is None or not (Path(args.mirror) / "ml-latest-small").is_dir():
        sys.exit("pass --mirror (a folder holding ml-latest-small/) or set RECSYS_DATA_MIRROR")
    mirror = Path(args.mirror).resolve()
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-own-") as tmp:
        for name in args.sources:
            root = workspace(Path(tmp) / name)
            context = prepare(name, root, mirror)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RECSYS_"))}
            with context() as url:
                if url:
                    env["RECSYS_DATABASE_URL"] = url
                results[name], seconds[name] = run_pipeline(root, env)
            print(f"{name}: done in {seconds[name]:.0f} s", flush=True)
    print()
    print(table(results, seconds))


if __name__ == "__main__":
    main()
