"""data.source files: CSV / Parquet / fsspec URLs through a column mapping into the data contract."""

from __future__ import annotations

import gzip

import fsspec
import numpy as np
import pandas as pd
import pytest

from pipeline.config import ColumnsParams, DataParams, FilesParams, RatingScaleParams
from pipeline.data.ids import HASHED, KEPT, hash_id
from pipeline.data.own import normalise_genres, to_unix_seconds
from pipeline.data.schema import MOVIES_DTYPES, RATINGS_DTYPES, RatingScale
from pipeline.data.sources import load_dataset
from pipeline.errors import DataError

# A team's export: its own column names, string user ids, ISO and unix timestamps mixed, ';' genres.
RATINGS_CSV = """uid,item,stars,when,device
alice,1,4.5,2020-01-01T10:00:00Z,web
bob,2,3,1600000000,app
alice,2,5,2021-03-04,web
carol,3,1,2021-03-04T12:00:00+02:00,app
"""
MOVIES_CSV = """item,name,tags,released
1,Heat (1995),Action; Crime,
2,"Babylon, 5",,1994
3,Unknown film,(no genres listed),
"""
COLUMNS = ColumnsParams(user="uid", movie="item", rating="stars", timestamp="when", title="name", genres="tags", year="released")


def own_files(tmp_path, ratings=RATINGS_CSV, movies=MOVIES_CSV, suffix=".csv"):
    paths = tmp_path / f"ratings{suffix}", tmp_path / f"movies{suffix}"
    paths[0].write_text(ratings)
    paths[1].write_text(movies)
    return [str(p) for p in paths]


def files_params(ratings, movies, columns=COLUMNS, **overrides) -> DataParams:
    return DataParams(source="files", files=FilesParams(ratings=ratings, movies=movies), columns=columns,
                      genre_separator=";", **overrides)  # fmt: skip


def test_csv_with_own_column_names_becomes_the_contract(tmp_path):
    dataset = load_dataset(files_params(*own_files(tmp_path)))
    ratings, movies = dataset.ratings, dataset.movies
    assert ratings.dtypes.astype(str).to_dict() == RATINGS_DTYPES
    assert movies.dtypes.astype(str).to_dict() == {k: str(v) for k, v in MOVIES_DTYPES.items()}
    assert ratings["user_id"].tolist() == [hash_id(u) for u in ("alice", "bob", "alice", "carol")]
    assert ratings["movie_id"].tolist() == [1, 2, 2, 3]  # whole-number ids kept
    assert ratings["rating"].tolist() == [4.5, 3.0, 5.0, 1.0]
    assert ratings["timestamp"].tolist() == [1_577_872_800, 1_600_000_000, 1_614_816_000, 1_614_852_000]
    assert movies["title"].tolist() == ["Heat (1995)", "Babylon, 5", "Unknown film"]
    assert movies["year"].tolist() == [1995, 1994, pd.NA]  # column first, else the title's "(YYYY)", else missing
    assert movies["genres"].tolist() == ["Action|Crime", "", ""]
    assert dataset.scale == RatingScale(0.5, 5.0, 0.5)
    assert dataset.id_maps.rules == {"user_id": HASHED, "movie_id": KEPT}
    users = dataset.id_maps.users
    assert dict(zip(users.source_id, users.user_id, strict=True)) == {u: hash_id(u) for u in ("alice", "bob", "carol")}


def test_parquet_gives_the_same_data_as_csv(tmp_path):
    csv = own_files(tmp_path)
    parquet = [str(tmp_path / "ratings.parquet"), str(tmp_path / "movies.parquet")]
    pd.read_csv(csv[0], dtype={"uid": str}).to_parquet(parquet[0])
    pd.read_csv(csv[1], keep_default_na=False, dtype={"released": str}).to_parquet(parquet[1])
    from_csv, from_parquet = load_dataset(files_params(*csv)), load_dataset(files_params(*parquet))
    assert from_parquet.ratings.equals(from_csv.ratings)
    assert from_parquet.movies.equals(from_csv.movies)


def test_an_fsspec_url_is_read_like_a_path():
    fs = fsspec.filesystem("memory")
    fs.pipe("/own/ratings.csv.gz", gzip.compress(RATINGS_CSV.encode()))
    fs.pipe("/own/movies.csv", MOVIES_CSV.encode())
    dataset = load_dataset(files_params("memory://own/ratings.csv.gz", "memory://own/movies.csv"))
    assert len(dataset.ratings) == 4 and len(dataset.movies) == 3


def test_no_year_and_no_genres_columns_are_allowed(tmp_path):
    columns = COLUMNS.model_copy(update={"genres": None, "year": None})
    dataset = load_dataset(files_params(*own_files(tmp_path), columns=columns))
    assert dataset.movies["genres"].tolist() == ["", "", ""]
    assert dataset.movies["year"].tolist() == [1995, pd.NA, pd.NA]


def test_exact_duplicate_movie_rows_collapse(tmp_path):
    dataset = load_dataset(files_params(*own_files(tmp_path, movies=MOVIES_CSV + "1,Heat (1995),Action;Crime,\n")))
    assert dataset.movies["movie_id"].tolist() == [1, 2, 3]


def test_genres_are_split_on_the_separator_and_cleaned():
    genres = pd.Series(["Drama, Children's ,", None, "(no genres listed)", " Comedy"])
    assert normalise_genres(genres, ",").tolist() == ["Drama|Children", "", "", "Comedy"]


def test_timestamps_in_every_accepted_form():
    text = pd.Series(["0", "2020-01-01", "2020-01-01T00:00:01.9Z", "2020-01-01T02:00:00+02:00"])
    assert to_unix_seconds(text, "f", "t").tolist() == [0, 1_577_836_800, 1_577_836_801, 1_577_836_800]
    stamps = pd.Series(pd.to_datetime(["2020-01-01 00:00:00", "2020-01-01 00:00:02.5"], format="ISO8601"))
    assert to_unix_seconds(stamps, "f", "t").tolist() == [1_577_836_800, 1_577_836_802]
    assert to_unix_seconds(pd.Series([5.0, 7.0]), "f", "t").tolist() == [5, 7]


# ---- bad input: one clear error each ----------------------------------------------------------


def bad(tmp_path, **kwargs) -> str:
    params = kwargs.pop("params", None) or files_params(*own_files(tmp_path, **kwargs))
    with pytest.raises(DataError) as info:
        load_dataset(params)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_file_is_named(tmp_path):
    message = bad(tmp_path, params=files_params(str(tmp_path / "nope.csv"), str(tmp_path / "movies.csv")))
    assert message == f"{tmp_path / 'nope.csv'}: file not found"


def test_an_s3_url_without_s3fs_says_what_to_install():
    try:
        import s3fs  # noqa: F401  (not in the lock)
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here")
    with pytest.raises(DataError, match=r"s3://bucket/ratings\.parquet: cannot be read: .*s3fs"):
        load_dataset(files_params("s3://bucket/ratings.parquet", "s3://bucket/movies.parquet"))


def test_an_unknown_extension_is_named(tmp_path):
    (tmp_path / "ratings.xlsx").write_text("x")
    message = bad(tmp_path, params=files_params(str(tmp_path / "ratings.xlsx"), str(tmp_path / "movies.csv")))
    assert "ratings.xlsx: has an unknown extension; expected one of .csv, .tsv, .parquet, .pq" in message


def test_a_mapping_naming_absent_columns_lists_the_available_ones(tmp_path):
    columns = COLUMNS.model_copy(update={"rating": "score", "timestamp": "time"})
    message = bad(tmp_path, params=files_params(*own_files(tmp_path), columns=columns))
    assert message.endswith(
        "ratings.csv: has no column score (data.columns.rating), time (data.columns.timestamp); "
        "its columns are uid, item, stars, when, device"
    )


def test_a_parquet_mapping_error_lists_the_available_columns(tmp_path):
    path = tmp_path / "movies.parquet"
    pd.DataFrame({"item": [1], "name": ["A"]}).to_parquet(path)
    columns = COLUMNS.model_copy(update={"year": None})
    message = bad(tmp_path, params=files_params(own_files(tmp_path)[0], str(path), columns=columns))
    assert message.endswith("movies.parquet: has no column tags (data.columns.genres); its columns are item, name")


def test_unparseable_timestamps_give_count_and_example(tmp_path):
    ratings = RATINGS_CSV.replace("2021-03-04,web", "yesterday,web").replace("1600000000", "soon")
    message = bad(tmp_path, ratings=ratings)
    assert message.endswith("column 'when': 2 rows are neither unix seconds nor ISO 8601 date/times (e.g. 'soon', 'yesterday')")


def test_ratings_outside_the_declared_scale_give_count_and_example(tmp_path):
    message = bad(tmp_path, ratings=RATINGS_CSV.replace(",4.5,", ",9,").replace(",3,", ",3.2,"))
    assert message.endswith(
        "column 'stars': 2 rows are outside the rating scale 0.5..5 in steps of 0.5 (data.rating_scale) (e.g. 9.0, 3.2)"
    )


def test_the_declared_scale_is_the_one_checked_and_recorded(tmp_path):
    ten_stars = RATINGS_CSV.replace(",4.5,", ",9,").replace(",5,", ",10,")
    dataset = load_dataset(files_params(*own_files(tmp_path, ratings=ten_stars), rating_scale=RatingScaleParams(min=1, max=10, step=1)))
    assert dataset.ratings["rating"].tolist() == [9.0, 3.0, 10.0, 1.0]
    assert dataset.scale == RatingScale(1.0, 10.0, 1.0)


def test_non_numeric_ratings_are_named(tmp_path):
    assert bad(tmp_path, ratings=RATINGS_CSV.replace(",4.5,", ",good,")).endswith("column 'stars': 1 row are not numbers (e.g. 'good')")


def test_duplicate_movie_ids_with_different_titles_are_an_error(tmp_path):
    message = bad(tmp_path, movies=MOVIES_CSV + "2,Babylon 5 (1994),,1994\n")
    assert message.endswith(
        "movies.csv: column 'item': 2 rows share a movie id but differ in title, genres or year "
        "(e.g. \"2: 'Babylon, 5' / 'Babylon 5 (1994)'\")"
    )


def test_a_missing_user_id_is_an_error(tmp_path):
    assert bad(tmp_path, ratings=RATINGS_CSV.replace("bob,2", ",2")).endswith(
        "column 'uid': 1 row have no id (missing value) (e.g. 'row 1')"
    )


def test_an_empty_file_is_named(tmp_path):
    assert bad(tmp_path, ratings="").endswith("ratings.csv: is empty")
    assert bad(tmp_path, ratings="uid,item,stars,when\n").endswith("ratings.csv: has no rows")


def test_years_that_are_not_whole_numbers_are_named(tmp_path):
    message = bad(tmp_path, movies=MOVIES_CSV.replace(",1994", ",mid-90s"))
    assert message.endswith("movies.csv: column 'released': 1 row are not whole years (e.g. 'mid-90s')")


def test_whole_float_ids_and_numeric_timestamps_from_parquet(tmp_path):
    path = tmp_path / "ratings.parquet"
    pd.DataFrame({"uid": [1.0, 2.0], "item": [1, 2], "stars": [4.0, 3.0], "when": np.array([5, 6])}).to_parquet(path)
    dataset = load_dataset(files_params(str(path), own_files(tmp_path)[1]))
    assert dataset.ratings["user_id"].tolist() == [1, 2] and dataset.id_maps.rules["user_id"] == KEPT
