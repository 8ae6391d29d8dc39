"""Stage `split`: data/raw/ratings.parquet -> data/split/{train,test}.parquet (written together, atomically)."""

from __future__ import annotations

import pandas as pd

from pipeline.config import Params
from pipeline.data.schema import TIMESTAMP, conform_ratings
from pipeline.io import atomic_outputs
from pipeline.paths import Layout
from pipeline.split import split_ratings


def run(params: Params, layout: Layout) -> None:
    layout.require(layout.raw_ratings)
    ratings = conform_ratings(pd.read_parquet(layout.raw_ratings), str(layout.raw_ratings))
    cfg = params.split
    train, test = split_ratings(ratings, cfg.strategy, cfg.test_size, cfg.seed, file=str(layout.raw_ratings), cutoff=cfg.cutoff_seconds())
    with atomic_outputs(layout.train, layout.test) as (train_tmp, test_tmp):
        train.to_parquet(train_tmp, index=False)
        test.to_parquet(test_tmp, index=False)
    print(f"split ({cfg.strategy}, test_size {cfg.test_size}, seed {cfg.seed}): {len(train)} train, {len(test)} test ratings")
    if cfg.strategy == "time_cutoff":
        last, first = (pd.Timestamp(int(t), unit="s", tz="UTC") for t in (train[TIMESTAMP].max(), test[TIMESTAMP].min()))
        print(f"split: train ratings up to {last}, test ratings from {first}")
