from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from pipeline.data.schema import GENRE_VOCABULARY
from pipeline.errors import DataError
from pipeline.features import (
    MOVIE_FEATURE_COLUMNS,
    USER_FEATURE_COLUMNS,
    build_features,
    load_features,
    movie_features,
    no_history_user,
    save_features,
    scalers_from_dict,
    scalers_to_dict,
    user_feature_row,
    user_features,
)

# 4 movies, 2 genres used (Action, Comedy), movie 40 has none, movie 50 is never rated in train.
MOVIES = pd.DataFrame(
    {
        "movie_id": [40, 10, 20, 30, 50],
        "title": ["D", "A", "B", "C", "E"],
        "year": pd.array([2010, 1990, None, 2001, 2005], dtype="Int64"),
        "genres": ["", "Action", "Comedy", "Action|Comedy", "Comedy"],
    }
)
# user 1: 10 (A) 4, 20 (C) 2, 30 (A,C) 3; user 2: 10 (A) 5, 40 (-) 1; user 3: 20 (C) 3.5
TRAIN = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 2, 2, 3],
        "movie_id": [10, 20, 30, 10, 40, 20],
        "rating": [4.0, 2.0, 3.0, 5.0, 1.0, 3.5],
        "timestamp": [1, 2, 3, 4, 5, 6],
    }
)
GLOBAL_MEAN = 18.5 / 6


def test_user_features_hand_worked_without_prior() -> None:
    users = user_features(TRAIN, MOVIES, 0.0)
    assert list(users.columns) == ["user_id", *USER_FEATURE_COLUMNS]
    assert users.user_id.tolist() == [1, 2, 3]
    assert users.n_ratings.tolist() == [3, 2, 1]
    assert users.avg_rating.tolist() == [3.0, 3.0, 3.5]
    assert users.avg_Action.tolist() == [3.5, 5.0, 3.5]  # (4+3)/2; 5/1; never rated -> own mean
    assert users.avg_Comedy.tolist() == [2.5, 3.0, 3.5]  # (2+3)/2; never -> 3.0; 3.5/1
    assert users.avg_Drama.tolist() == [3.0, 3.0, 3.5]
    assert users.dtypes["user_id"] == "int64" and users.dtypes["n_ratings"] == "int64"


def test_user_features_shrink_toward_user_mean() -> None:
    users = user_features(TRAIN, MOVIES, 2.0)
    # user 1 Action: (7 + 2*3) / (2 + 2) = 3.25; Comedy: (5 + 6) / 4 = 2.75
    # user 2 Action: (5 + 2*3) / (1 + 2) = 11/3; user 3 Comedy: (3.5 + 7) / 3 = 3.5
    assert users.avg_Action.tolist() == pytest.approx([3.25, 11 / 3, 3.5])
    assert users.avg_Comedy.tolist() == pytest.approx([2.75, 3.0, 3.5])


def test_user_features_match_a_naive_groupby() -> None:
    rng = np.random.default_rng(0)
    movies = pd.DataFrame(
        {
            "movie_id": np.arange(30, dtype="int64"),
            "title": "t",
            "year": pd.array([2000] * 30, dtype="Int64"),
            "genres": ["|".join(rng.choice(GENRE_VOCABULARY, size=rng.integers(0, 4), replace=False)) for _ in range(30)],
        }
    )
    pairs = rng.choice(20 * 30, size=300, replace=False)
    train = pd.DataFrame({"user_id": pairs // 30, "movie_id": pairs % 30, "rating": rng.integers(1, 11, 300) / 2})
    got = user_features(train, movies, 1.5).set_index("user_id")
    mean = train.groupby("user_id").rating.mean()
    exploded = train.merge(movies[["movie_id", "genres"]], on="movie_id").assign(genre=lambda d: d.genres.str.split("|"))
    exploded = exploded.explode("genre")
    for genre in GENRE_VOCABULARY:
        rows = exploded[exploded.genre == genre].groupby("user_id").rating
        total = rows.sum().reindex(mean.index, fill_value=0.0)
        count = rows.count().reindex(mean.index, fill_value=0)
        expected = (total + 1.5 * mean) / (count + 1.5)
        np.testing.assert_allclose(got[f"avg_{genre}"], expected, rtol=1e-12)


def test_movie_features_hand_worked() -> None:
    movies = movie_features(TRAIN, MOVIES)
    assert list(movies.columns) == ["movie_id", *MOVIE_FEATURE_COLUMNS]
    assert movies.movie_id.tolist() == [10, 20, 30, 40, 50]  # every movie, sorted
    assert movies.year.tolist() == [1990, 2003, 2001, 2010, 2005]  # movie 20: median of 1990, 2001, 2005, 2010
    assert movies.n_ratings.tolist() == [2, 2, 1, 1, 0]
    assert movies.avg_rating.tolist() == pytest.approx([4.5, 2.75, 3.0, 1.0, GLOBAL_MEAN])
    assert movies.is_Action.tolist() == [1, 0, 1, 0, 0]
    assert movies.is_Comedy.tolist() == [0, 1, 1, 0, 1]
    assert movies[[f"is_{g}" for g in GENRE_VOCABULARY]].iloc[3].sum() == 0


def test_missing_year_uses_median_rounded_half_up() -> None:
    movies = MOVIES.assign(year=pd.array([2000, 1990, None, 2001, None], dtype="Int64"))
    # known years 1990, 2000, 2001 -> median 2000 for movie 20
    assert movie_features(TRAIN, movies).year.tolist()[1] == 2000
    movies = movies.assign(year=pd.array([2000, None, None, 2001, None], dtype="Int64"))  # 2000.5 -> 2001
    assert movie_features(TRAIN, movies).year.tolist() == [2001, 2001, 2001, 2000, 2001]


def test_movies_without_any_year_or_genres_still_get_features() -> None:
    """Own data may lack both: the year becomes a constant 0 (scaled to 0), the genre flags and
    per-genre averages fall back to zeros and the user's own average."""
    bare = MOVIES.assign(year=pd.array([None] * 5, dtype="Int64"), genres="")
    features = build_features(TRAIN, bare, 0.0)
    assert features.movies.year.tolist() == [0, 0, 0, 0, 0]
    assert (features.movies[[f"is_{g}" for g in GENRE_VOCABULARY]] == 0).all().all()
    assert features.users.avg_Action.tolist() == features.users.avg_rating.tolist()
    scaled = features.scalers.movie.transform(features.movies[list(MOVIE_FEATURE_COLUMNS)])
    assert np.isfinite(scaled).all() and (scaled[:, 0] == 0).all()


def test_no_history_user_is_the_train_mean() -> None:
    row = no_history_user(TRAIN)
    assert list(row.columns) == ["user_id", *USER_FEATURE_COLUMNS] and len(row) == 1
    assert row.user_id[0] == -1 and row.n_ratings[0] == 0
    assert row.drop(columns=["user_id", "n_ratings"]).to_numpy() == pytest.approx(GLOBAL_MEAN)
    assert row.dtypes.equals(user_features(TRAIN, MOVIES, 0.0).dtypes)


def test_user_feature_row_of_ad_hoc_ratings() -> None:
    row = user_feature_row(pd.DataFrame({"movie_id": [30, 40], "rating": [5.0, 2.0]}), MOVIES, 0.0, user_id=99)
    assert row.user_id.tolist() == [99] and row.n_ratings.tolist() == [2]
    assert row.avg_rating[0] == 3.5 and row.avg_Action[0] == 5.0 and row.avg_Comedy[0] == 5.0 and row.avg_Drama[0] == 3.5
    same = user_feature_row(TRAIN[TRAIN.user_id == 1], MOVIES, 2.0, user_id=1)
    assert same.equals(user_features(TRAIN, MOVIES, 2.0).iloc[[0]].reset_index(drop=True))


def test_scalers_fit_on_train_hand_worked() -> None:
    scalers = build_features(TRAIN, MOVIES, 0.0).scalers
    assert list(scalers.user.feature_names_in_) == list(USER_FEATURE_COLUMNS)
    assert scalers.user.mean_[:2] == pytest.approx([2.0, 19 / 6])  # n_ratings 3,2,1; avg 3,3,3.5
    assert scalers.user.var_[0] == pytest.approx(2 / 3)
    # movie scaler: only the 4 movies rated in train (movie 50 excluded)
    assert scalers.movie.n_samples_seen_ == 4
    assert scalers.movie.mean_[:3] == pytest.approx([(1990 + 2003 + 2001 + 2010) / 4, (4.5 + 2.75 + 3 + 1) / 4, 1.5])
    assert (scalers.target.data_min_[0], scalers.target.data_max_[0]) == (1.0, 5.0)
    assert scalers.target.transform([[1.0], [3.0], [5.0]]).ravel().tolist() == [-1.0, 0.0, 1.0]
    assert scalers.global_mean == pytest.approx(GLOBAL_MEAN)


def test_scalers_round_trip_through_json_without_pickle() -> None:
    features = build_features(TRAIN, MOVIES, 1.0)
    state = json.loads(json.dumps(scalers_to_dict(features.scalers)))
    assert set(state) == {"user", "movie", "target", "global_mean"}
    assert state["target"]["feature_range"] == [-1, 1]
    rebuilt = scalers_from_dict(state)
    assert isinstance(rebuilt.user, StandardScaler) and isinstance(rebuilt.target, MinMaxScaler)
    for name, frame in (("user", features.users), ("movie", features.movies)):
        original, copy = getattr(features.scalers, name), getattr(rebuilt, name)
        columns = list(original.feature_names_in_)
        assert np.array_equal(copy.transform(frame[columns]), original.transform(frame[columns]))
        assert np.array_equal(
            copy.inverse_transform(original.transform(frame[columns])), original.inverse_transform(original.transform(frame[columns]))
        )
        assert copy.n_features_in_ == original.n_features_in_ and np.array_equal(copy.var_, original.var_)
    ratings = np.arange(0.5, 5.5, 0.5).reshape(-1, 1)
    assert np.array_equal(rebuilt.target.transform(ratings), features.scalers.target.transform(ratings))
    assert np.array_equal(rebuilt.target.inverse_transform([[0.3]]), features.scalers.target.inverse_transform([[0.3]]))
    assert rebuilt.global_mean == features.scalers.global_mean
    assert scalers_to_dict(rebuilt) == state


def test_save_and_load_round_trip(tmp_path) -> None:
    features = build_features(TRAIN, MOVIES, 0.0)
    save_features(features, tmp_path / "features")
    loaded = load_features(tmp_path / "features")
    assert loaded.users.equals(features.users) and loaded.movies.equals(features.movies)
    assert scalers_to_dict(loaded.scalers) == scalers_to_dict(features.scalers)


def test_load_features_names_the_missing_file(tmp_path) -> None:
    save_features(build_features(TRAIN, MOVIES, 0.0), tmp_path)
    (tmp_path / "movies.parquet").unlink()
    with pytest.raises(DataError, match=r"movies\.parquet: not found"):
        load_features(tmp_path)


def test_corrupt_scalers_is_a_data_error() -> None:
    state = scalers_to_dict(build_features(TRAIN, MOVIES, 0.0).scalers)
    del state["user"]["var"]
    with pytest.raises(DataError, match="scalers.json: not a valid scalers file"):
        scalers_from_dict(state)


def test_empty_train_is_a_data_error() -> None:
    with pytest.raises(DataError, match="train: has no ratings"):
        build_features(TRAIN.iloc[:0], MOVIES, 0.0)


def test_missing_column_is_a_data_error() -> None:
    with pytest.raises(DataError, match="train: missing column.*rating"):
        user_features(TRAIN.drop(columns="rating"), MOVIES, 0.0)
    with pytest.raises(DataError, match="movies.parquet: missing column.*genres"):
        build_features(TRAIN, MOVIES.drop(columns="genres"), 0.0, movies_file="movies.parquet")


def test_rating_of_unknown_movie_is_a_data_error() -> None:
    train = pd.concat([TRAIN, pd.DataFrame({"user_id": [1], "movie_id": [77], "rating": [3.0], "timestamp": [9]})])
    with pytest.raises(DataError, match=r"train: column 'movie_id': 1 row rate movies absent .*77"):
        movie_features(train, MOVIES)


def test_duplicate_movie_ids_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"column 'movie_id': 1 row are duplicate movie ids \(e.g. 10\)"):
        user_features(TRAIN, pd.concat([MOVIES, MOVIES.iloc[[1]]]), 0.0)


def test_empty_ad_hoc_ratings_point_to_no_history_user() -> None:
    with pytest.raises(DataError, match="no_history_user"):
        user_feature_row(pd.DataFrame({"movie_id": [], "rating": []}), MOVIES, 0.0)
