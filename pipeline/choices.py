"""The named choices of params.yaml that several modules need, each listed once and imported.

`Source`: where ingest reads ratings (the offline generator, a MovieLens release, whose files and
facts are in pipeline/data/movielens.py, RELEASES, or a team's own files or database). `SplitStrategy`: how the split
stage divides them (pipeline/split.py).
"""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["synthetic", "ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "ml-32m", "files", "sql"]
SOURCES: tuple[str, ...] = get_args(Source)
SYNTHETIC = "synthetic"
OWN_SOURCES: tuple[str, ...] = ("files", "sql")  # a team's own ratings: pipeline/data/own.py, sql.py
MOVIELENS_SOURCES: tuple[str, ...] = tuple(source for source in SOURCES if source not in (SYNTHETIC, *OWN_SOURCES))

SplitStrategy = Literal["random", "temporal", "cold_user", "cold_item", "time_cutoff"]
SPLIT_STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
