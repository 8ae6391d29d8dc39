"""read_ratings: only the columns the models use, always in the contract dtypes, bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.schema import MOVIE, RATING, TIMESTAMP, USER
from pipeline.errors import DataError
from pipeline.stages.inputs import MODEL_COLUMNS, read_ratings


def ratings(**dtypes: str) -> pd.DataFrame:
    frame = pd.DataFrame({USER: [1, 1, 2], MOVIE: [10, 20, 10], RATING: [4.0, 3.5, 5.0], TIMESTAMP: [9, 8, 7]})
    return frame.astype(dtypes) if dtypes else frame


def test_a_contract_file_gives_user_movie_rating_only(tmp_path: Path):
    path = tmp_path / "train.parquet"
    ratings().to_parquet(path, index=False)
    frame = read_ratings(path)
    assert list(frame.columns) == [USER, MOVIE, RATING] == list(MODEL_COLUMNS)
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "float64"]
    np.testing.assert_array_equal(frame[RATING], [4.0, 3.5, 5.0])
    assert list(read_ratings(path, columns=(USER, TIMESTAMP)).columns) == [USER, TIMESTAMP]


def test_other_dtypes_are_conformed_to_the_contract(tmp_path: Path):
    path = tmp_path / "train.parquet"
    ratings(**{USER: "int32", MOVIE: "float64", RATING: "float32"}).to_parquet(path, index=False)
    frame = read_ratings(path)
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "float64"]
    np.testing.assert_array_equal(frame[MOVIE], [10, 20, 10])


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [(RATING, np.nan, "are not finite numbers"), (RATING, np.inf, "are not finite numbers"), (USER, np.nan, "are missing")],
)
def test_a_bad_value_is_a_data_error_naming_the_file_and_column(tmp_path: Path, column: str, value: float, problem: str):
    path = tmp_path / "train.parquet"
    frame = ratings()
    frame[column] = frame[column].astype("float64")
    frame.loc[1, column] = value
    frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match=f"{path}: column '{column}': 1 rows? {problem}"):
        read_ratings(path)


def test_a_missing_column_is_a_data_error(tmp_path: Path):
    path = tmp_path / "train.parquet"
    ratings().drop(columns=[TIMESTAMP]).to_parquet(path, index=False)
    with pytest.raises(DataError, match=f"{path}: missing column.*{TIMESTAMP}"):
        read_ratings(path)
