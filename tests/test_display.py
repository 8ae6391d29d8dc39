"""What recommend/similar show beside each title: details from the model and the pipeline's tables."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipeline import display
from pipeline.data.schema import GENRES, MOVIE, TITLE, YEAR
from pipeline.features import AVG_RATING, N_RATINGS

IDS = np.array([10, 20, 30], np.int64)
SUPPORT = np.array([3, 0, 1], np.int64)
MOVIES = pd.DataFrame(
    {MOVIE: [30, 10, 20], TITLE: ["C", "A", "B"], YEAR: pd.array([1999, None, 2001], "Int64"), GENRES: ["Drama", "Action|Comedy", ""]}
)
FEATURES = pd.DataFrame({MOVIE: [10, 20, 30], N_RATINGS: [3, 0, 1], AVG_RATING: [4.5, 3.2, 2.0]})


def test_details_join_year_genres_counts_and_means_by_movie_id():
    table = display.movie_details(IDS, SUPPORT, MOVIES, FEATURES).table
    assert table.loc[10, GENRES] == "Action|Comedy" and pd.isna(table.loc[10, YEAR])
    assert table.loc[30, YEAR] == 1999 and table.loc[30, N_RATINGS] == 1
    assert table.loc[10, display.MEAN_RATING] == 4.5
    # the features stage fills a movie without ratings with the global mean: not shown as its mean
    assert pd.isna(table.loc[20, display.MEAN_RATING])


def test_missing_tables_leave_their_columns_out_with_a_note_naming_the_file():
    details = display.movie_details(IDS, SUPPORT, None, None, movies_file="m.parquet", features_file="f.parquet")
    assert list(details.table.columns) == [N_RATINGS]
    assert any("m.parquet" in n for n in details.notes) and any("f.parquet" in n for n in details.notes)


def test_features_from_other_training_data_give_no_mean_rating():
    stale = FEATURES.assign(**{N_RATINGS: [3, 0, 2]})
    details = display.movie_details(IDS, SUPPORT, MOVIES, stale, features_file="f.parquet")
    assert display.MEAN_RATING not in details.table.columns
    assert details.notes == [
        "f.parquet: rating counts differ from the model's for 1 movies (built from other training data; "
        "rerun `dvc repro`): no mean rating shown"
    ]


def shown_frame():
    details = display.movie_details(IDS, SUPPORT, MOVIES, FEATURES)
    answer = pd.DataFrame({MOVIE: [30, 10], TITLE: ["C (1999)", "A"], "predicted_stars": [4.25, 3.5]})
    return display.with_details(answer, "predicted_stars", details), details


def test_text_table_numbers_rows_aligns_columns_and_explains_the_score():
    shown, details = shown_frame()
    text = display.as_text(shown, display.PREDICTED_STARS, details, ["Top 2:"])
    lines = text.splitlines()
    assert lines[0] == "Top 2:"
    assert lines[1].split() == ["#", "movie_id", "title", "year", "genres", "ratings", "mean", "rating", "predicted", "stars"]
    assert lines[2].split() == ["1", "30", "C", "(1999)", "1999", "Drama", "1", "2.00", "4.250"]
    assert lines[3].split() == ["2", "10", "A", "Action,", "Comedy", "3", "4.50", "3.500"]
    assert len({len(line) for line in lines[1:4]}) == 1  # one width per column
    assert "predicted stars: the model's predicted rating of the movie" in lines


def test_json_lists_details_per_result_and_says_what_the_score_is():
    shown, details = shown_frame()
    document = json.loads(display.as_json(shown, display.PREDICTED_STARS, details, {"user": 7}))
    assert document["query"] == {"user": 7}
    assert document["score"]["key"] == "predicted_stars"
    assert document["results"][1] == {
        "rank": 2, "movie_id": 10, "title": "A", "year": None, "genres": ["Action", "Comedy"],
        "n_ratings": 3, "mean_rating": 4.5, "predicted_stars": 3.5,
    }  # fmt: skip


def test_ranking_score_names_the_ranking_params():
    score = display.ranking_score(SimpleNamespace(shrinkage=500.0, popularity_weight=0.25, min_support=3))
    assert score.header == "ranking score"
    assert "shrinkage 500, popularity_weight 0.25, min_support 3" in score.meaning
