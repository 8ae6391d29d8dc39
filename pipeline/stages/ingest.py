"""Stage `ingest`: the configured source -> data/raw/{ratings,movies}.parquet and dataset.json
(own data, data.source files | sql: also data/raw/id_map/{users,movies}.parquet)."""

from __future__ import annotations

import shutil

from pipeline.config import Params
from pipeline.data.sources import dataset_metadata, load_dataset
from pipeline.io import atomic_outputs, write_json
from pipeline.paths import ID_MAP_MOVIES, ID_MAP_USERS, Layout


def run(params: Params, layout: Layout) -> None:
    """Load and conform the source, then write all outputs together (or none of them)."""
    dataset = load_dataset(params.data)
    ratings, movies = dataset.ratings, dataset.movies
    meta = dataset_metadata(ratings, movies, params.data.source, dataset.scale, dataset.id_maps)
    outputs = [layout.raw_ratings, layout.raw_movies, layout.raw_meta] + ([layout.raw_id_map] if dataset.id_maps is not None else [])
    with atomic_outputs(*outputs) as tmps:
        ratings.to_parquet(tmps[0], index=False)
        movies.to_parquet(tmps[1], index=False)
        write_json(tmps[2], meta)
        if dataset.id_maps is not None:
            tmps[3].mkdir()
            dataset.id_maps.users.to_parquet(tmps[3] / ID_MAP_USERS, index=False)
            dataset.id_maps.movies.to_parquet(tmps[3] / ID_MAP_MOVIES, index=False)
    if dataset.id_maps is None and layout.raw_id_map.exists():
        shutil.rmtree(layout.raw_id_map)  # left by an earlier own-data run; these ids are not mapped
    print(
        f"ingest: {meta['source']}: {meta['n_ratings']:,} ratings, {meta['n_users']:,} users, {meta['n_movies']:,} movies -> {layout.raw}/"
    )
