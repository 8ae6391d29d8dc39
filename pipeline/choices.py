"""The named choices of params.yaml that several modules need, each listed once and imported.

`Source`: where ingest reads ratings (the offline generator or a MovieLens release; each release's
files and facts are in pipeline/data/movielens.py, RELEASES). `SplitStrategy`: how the split
stage divides them (pipeline/split.py).
"""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["synthetic", "ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "ml-32m"]
SOURCES: tuple[str, ...] = get_args(Source)
SYNTHETIC = "synthetic"
MOVIELENS_SOURCES: tuple[str, ...] = tuple(source for source in SOURCES if source != SYNTHETIC)

SplitStrategy = Literal["random", "temporal", "cold_user", "cold_item"]
SPLIT_STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
