"""Stage `ingest`: the configured source -> data/raw/{ratings,movies}.parquet and dataset.json."""

from __future__ import annotations

from pipeline.config import Params
from pipeline.data.sources import dataset_metadata, load_source
from pipeline.io import atomic_outputs, write_json
from pipeline.paths import RAW_META, RAW_MOVIES, RAW_RATINGS


def run(params: Params) -> None:
    """Load and conform the source, then write the three outputs together (or none of them)."""
    ratings, movies, scale = load_source(params.data)
    meta = dataset_metadata(ratings, movies, params.data.source, scale)
    with atomic_outputs(RAW_RATINGS, RAW_MOVIES, RAW_META) as (ratings_tmp, movies_tmp, meta_tmp):
        ratings.to_parquet(ratings_tmp, index=False)
        movies.to_parquet(movies_tmp, index=False)
        write_json(meta_tmp, meta)
    print(
        f"ingest: {meta['source']}: {meta['n_ratings']:,} ratings, {meta['n_users']:,} users, "
        f"{meta['n_movies']:,} movies -> {RAW_RATINGS.parent}/"
    )
