"""load_source dispatch, rating scales, and the dataset.json record (hand-worked on tiny frames)."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest

from pipeline.choices import MOVIELENS_SOURCES, OWN_SOURCES, SOURCES, SYNTHETIC
from pipeline.config import DataParams, SyntheticParams
from pipeline.data import movielens
from pipeline.data.schema import MOVIES_DTYPES, RATINGS_DTYPES, RatingScale
from pipeline.data.sources import dataset_metadata, fingerprint, load_source
from pipeline.errors import DataError
from tests.factories import offline_download, write_release

TINY = SyntheticParams(n_users=10, n_movies=80, n_ratings=300, min_user_ratings=20, seed=5)


def tiny_frames():
    ratings = pd.DataFrame(
        {
            "user_id": np.array([1, 1, 7], dtype=np.int64),
            "movie_id": np.array([10, 20, 10], dtype=np.int64),
            "rating": [4.0, 2.5, 5.0],
            "timestamp": np.array([964982703, 964981247, 964983815], dtype=np.int64),
        }
    )
    movies = pd.DataFrame(
        {
            "movie_id": np.array([10, 20, 30], dtype=np.int64),
            "title": pd.Series(["Heat (1995)", "Babylon 5", "Blade (1998)"], dtype=object),
            "year": pd.array([1995, None, 1998], dtype="Int64"),
            "genres": pd.Series(["Action|Crime", "", "Action"], dtype=object),
        }
    )
    return ratings, movies


def test_synthetic_source_is_conformed_with_the_half_star_scale():
    ratings, movies, scale = load_source(DataParams(synthetic=TINY))
    assert ratings.dtypes.astype(str).to_dict() == RATINGS_DTYPES
    assert movies.dtypes.astype(str).to_dict() == {k: str(v) for k, v in MOVIES_DTYPES.items()}
    assert scale == RatingScale(0.5, 5.0, 0.5)
    assert len(ratings) == 300


def test_movielens_source_uses_its_release_scale(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)
    write_release(tmp_path / "mirror", "ml-100k")
    data = DataParams(source="ml-100k", mirror=str(tmp_path / "mirror"), cache_dir=str(tmp_path / "cache"))
    ratings, movies, scale = load_source(data)
    assert scale == RatingScale(1.0, 5.0, 1.0)
    assert (len(ratings), len(movies)) == (3, 5)


def test_unreachable_movielens_source_raises_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSYS_DATA_MIRROR", raising=False)
    monkeypatch.setattr(movielens, "download", offline_download)
    with pytest.raises(DataError, match="ml-1m.zip"):
        load_source(DataParams(source="ml-1m", cache_dir=str(tmp_path / "cache")))


def test_dataset_metadata_hand_worked():
    ratings, movies = tiny_frames()
    meta = dataset_metadata(ratings, movies, "ml-latest-small", RatingScale(0.5, 5.0, 0.5))
    assert {k: v for k, v in meta.items() if k != "fingerprint"} == {
        "source": "ml-latest-small",
        "rating_min": 0.5,
        "rating_max": 5.0,
        "rating_step": 0.5,
        "n_ratings": 3,
        "n_users": 2,
        "n_movies": 3,  # the catalogue, rated or not
    }
    assert len(meta["fingerprint"]) == 64 and int(meta["fingerprint"], 16) >= 0


def test_fingerprint_is_deterministic_and_sensitive():
    ratings, movies = tiny_frames()
    reference = fingerprint(ratings, movies)
    assert fingerprint(ratings.copy(), movies.copy()) == reference
    assert fingerprint(ratings.assign(rating=[4.0, 3.0, 5.0]), movies) != reference
    assert fingerprint(ratings, movies.assign(title=["Heat (1995)", "Babylon 5", "Blade II (2002)"])) != reference
    assert fingerprint(ratings.iloc[::-1].reset_index(drop=True), movies) != reference  # order is part of the data
    assert fingerprint(movies=ratings.iloc[:0], ratings=movies) != reference


def test_fingerprint_survives_a_parquet_round_trip(tmp_path):
    ratings, movies = tiny_frames()
    ratings.to_parquet(tmp_path / "r.parquet", index=False)
    movies.to_parquet(tmp_path / "m.parquet", index=False)
    reread = fingerprint(pd.read_parquet(tmp_path / "r.parquet"), pd.read_parquet(tmp_path / "m.parquet"))
    assert reread == fingerprint(ratings, movies)


def test_every_source_param_value_is_the_generator_or_a_known_release():
    """params.yaml's data.source choices, the MovieLens releases and the own-data sources come from one list."""
    assert SYNTHETIC in SOURCES
    assert set(movielens.RELEASES) == set(MOVIELENS_SOURCES) == set(SOURCES) - {SYNTHETIC, *OWN_SOURCES}
    assert typing.get_args(DataParams.model_fields["source"].annotation) == SOURCES
