"""What `recsys recommend` and `recsys similar` show: each title with its year, genres and training
ratings (how many, their mean), a score column that says what it holds, as a table or as JSON.

The number of ratings comes from the model itself (the training ratings it holds per movie); year
and genres from the movies table, the mean from the features table (train ratings only). A table
that is missing, or was built from other training data than the model, leaves its columns out
with a note saying why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.schema import GENRE_SEPARATOR, GENRES, MOVIE, TITLE, YEAR
from pipeline.features import AVG_RATING, MOVIES_FILE, N_RATINGS
from pipeline.paths import DEFAULT_LAYOUT

MEAN_RATING = "mean_rating"
DETAIL_COLUMNS = (YEAR, GENRES, N_RATINGS, MEAN_RATING)
HEADERS = {MOVIE: "movie_id", TITLE: "title", YEAR: "year", GENRES: "genres", N_RATINGS: "ratings", MEAN_RATING: "mean rating"}
LEGEND_COUNT = "ratings: how many training ratings the movie has"
LEGEND_MEAN = "; mean rating: their mean"


@dataclass(frozen=True)
class Score:
    """The score column: its JSON key, its table header and one line saying what it holds."""

    key: str
    header: str
    meaning: str
    digits: int = 3


PREDICTED_STARS = Score("predicted_stars", "predicted stars", "the model's predicted rating of the movie")
RANKING_MODEL_SCORE = Score("ranking_score", "ranking score", "the ranking model's score: higher ranks first (a preference, not stars)")
DISTANCE = Score("distance", "distance", "squared distance between the two movies' embeddings (smaller is closer)", 4)


def ranking_score(ranking: Any) -> Score:
    """The score of a list ranked with params.yaml's `ranking` section."""
    return Score(
        "ranking_score",
        "ranking score",
        f"predicted stars adjusted by params.yaml `ranking` (shrinkage {ranking.shrinkage:g}, popularity_weight "
        f"{ranking.popularity_weight:g}, min_support {ranking.min_support}); --raw lists predicted stars",
    )


@dataclass(frozen=True)
class Details:
    """Per catalogue movie (index movie_id): the detail columns known, and notes on the missing ones."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def movie_details(
    movie_ids: np.ndarray,
    support: np.ndarray,
    movies: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    *,
    movies_file: str = "movies",
    features_file: str = "features",
) -> Details:
    """Details of the catalogue `movie_ids`, whose training ratings per movie are `support`.

    `movies` (movie_id, year, genres) adds year and genres; `features` (movie_id, n_ratings,
    avg_rating) adds the mean rating, unless its counts disagree with `support` (then it was built
    from other training data and a note says so).
    """
    index = pd.Index(np.asarray(movie_ids, np.int64), name=MOVIE)
    support = np.asarray(support, np.int64)
    table = pd.DataFrame(index=index)
    notes = []
    if movies is None:
        notes.append(f"{movies_file} not found: no year or genres shown")
    else:
        known = movies.drop_duplicates(MOVIE).set_index(MOVIE).reindex(index)
        table[YEAR] = known[YEAR].astype("Int64")
        table[GENRES] = known[GENRES].fillna("").astype(str)
    table[N_RATINGS] = support
    if features is None:
        notes.append(f"{features_file} not found: no mean rating shown")
    else:
        known = features.drop_duplicates(MOVIE).set_index(MOVIE).reindex(index)
        counts = known[N_RATINGS].fillna(-1).to_numpy(np.int64)
        differ = int((counts != support).sum())
        if differ:
            notes.append(
                f"{features_file}: rating counts differ from the model's for {differ} movies (built from other "
                "training data; rerun `dvc repro`): no mean rating shown"
            )
        else:
            table[MEAN_RATING] = known[AVG_RATING].where(support > 0)
    return Details(table, notes)


def read_details(catalogue: Any, seen: Any, data_dir: Path) -> Details:
    """`movie_details` of a model's catalogue, with its training ratings per movie counted from `seen`
    (the model's SeenItems), from the pipeline's movies and features tables under `data_dir` (data/)."""
    movie_ids = catalogue.movie_ids
    support = np.bincount(seen.indices, minlength=len(catalogue))
    layout = DEFAULT_LAYOUT  # where the files are below its data/ folder
    movies_file = data_dir / layout.raw_movies.relative_to(layout.data)
    features_file = data_dir / layout.features.relative_to(layout.data) / MOVIES_FILE
    movies = pd.read_parquet(movies_file, columns=[MOVIE, YEAR, GENRES]) if movies_file.is_file() else None
    features = pd.read_parquet(features_file, columns=[MOVIE, N_RATINGS, AVG_RATING]) if features_file.is_file() else None
    return movie_details(movie_ids, support, movies, features, movies_file=str(movies_file), features_file=str(features_file))


def with_details(frame: pd.DataFrame, score_column: str, details: Details) -> pd.DataFrame:
    """movie_id, title, the known detail columns, then the score column (named by its key)."""
    joined = frame.join(details.table, on=MOVIE)
    columns = [MOVIE, TITLE, *[c for c in DETAIL_COLUMNS if c in details.table.columns], score_column]
    return joined[columns].reset_index(drop=True)


def _cells(shown: pd.DataFrame, score: Score) -> dict[str, list[str]]:
    """Each column's cells as text, keyed by column."""
    formats = {
        YEAR: lambda v: "" if pd.isna(v) else str(int(v)),
        GENRES: lambda v: str(v).replace(GENRE_SEPARATOR, ", "),
        MEAN_RATING: lambda v: "" if pd.isna(v) else f"{v:.2f}",
        score.key: lambda v: f"{v:.{score.digits}f}",
    }
    return {column: [formats.get(column, str)(v) for v in shown[column]] for column in shown.columns}


def table_lines(shown: pd.DataFrame, score: Score) -> list[str]:
    """Rank, then each column under its header: text columns aligned left, numbers right."""
    cells = {"#": [str(i) for i in range(1, len(shown) + 1)], **_cells(shown, score)}
    headers = {"#": "#", **{c: HEADERS.get(c, score.header) for c in shown.columns}}
    left = {TITLE, GENRES}
    widths = {c: max(len(headers[c]), *(len(v) for v in values)) for c, values in cells.items()}

    def line(values: dict[str, str]) -> str:
        parts = [values[c].ljust(widths[c]) if c in left else values[c].rjust(widths[c]) for c in cells]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line({c: cells[c][i] for c in cells}) for i in range(len(shown)))]


def as_text(shown: pd.DataFrame, score: Score, details: Details, heading: Sequence[str]) -> str:
    """The heading lines, the numbered table, and a legend of the columns (and any notes)."""
    if shown.empty:
        return "\n".join([*heading, "(nothing to recommend)"])
    legend = [f"{score.header}: {score.meaning}"]
    if N_RATINGS in shown:
        legend.append(LEGEND_COUNT + (LEGEND_MEAN if MEAN_RATING in shown else ""))
    return "\n".join([*heading, *table_lines(shown, score), "", *legend, *[f"note: {n}" for n in details.notes]])


def as_json(shown: pd.DataFrame, score: Score, details: Details, query: Mapping[str, Any]) -> str:
    """{query, score: {key, meaning}, results: [{rank, movie_id, title, year, genres: [...], ...}], notes}."""
    results = []
    for rank, row in enumerate(shown.to_dict("records"), start=1):
        item: dict[str, Any] = {"rank": rank, MOVIE: int(row[MOVIE]), TITLE: str(row[TITLE])}
        if YEAR in row:
            item[YEAR] = None if pd.isna(row[YEAR]) else int(row[YEAR])
        if GENRES in row:
            item[GENRES] = [g for g in str(row[GENRES]).split(GENRE_SEPARATOR) if g]
        if N_RATINGS in row:
            item[N_RATINGS] = int(row[N_RATINGS])
        if MEAN_RATING in row:
            item[MEAN_RATING] = None if pd.isna(row[MEAN_RATING]) else round(float(row[MEAN_RATING]), 4)
        item[score.key] = round(float(row[score.key]), 6)
        results.append(item)
    document = {
        "query": dict(query),
        "score": {"key": score.key, "meaning": score.meaning},
        "results": results,
        "notes": details.notes,
    }
    return json.dumps(document, indent=2, ensure_ascii=False)
