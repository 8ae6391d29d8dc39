"""The named choices of params.yaml (and the trained models' names) that several modules need, each
listed once and imported.

`FAMILIES`: the trained models by family and objective. `Source`: where ingest reads ratings (the
offline generator, a MovieLens release, whose files and facts are in pipeline/data/movielens.py,
RELEASES, or a team's own files or database). `SplitStrategy`: how the split stage divides them
(pipeline/split.py).
"""

from __future__ import annotations

from typing import Literal, get_args

from pipeline.errors import ModelError

# Each model family's model per objective: `rating` fits the stars (RMSE), `ranking` fits which movies
# a user picks (top-N lists). Plain names: pipeline/models/loading.py maps them to their classes.
FAMILIES: dict[str, dict[str, str]] = {
    "cofi": {"rating": "cofi", "ranking": "cofi_ranking"},
    "content": {"rating": "content", "ranking": "content_ranking"},
}
OBJECTIVES = ("rating", "ranking")


def family_objective(name: str) -> tuple[str, str]:
    """('cofi_ranking') -> ('cofi', 'ranking'): the family and objective of a trained model."""
    for family, models in FAMILIES.items():
        for objective, model in models.items():
            if model == name:
                return family, objective
    known = [model for models in FAMILIES.values() for model in models.values()]
    raise ModelError(f"unknown model '{name}'; choose one of {', '.join(known)}")


Source = Literal["synthetic", "ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "ml-32m", "files", "sql"]
SOURCES: tuple[str, ...] = get_args(Source)
SYNTHETIC = "synthetic"
OWN_SOURCES: tuple[str, ...] = ("files", "sql")  # a team's own ratings: pipeline/data/own.py, sql.py
MOVIELENS_SOURCES: tuple[str, ...] = tuple(source for source in SOURCES if source not in (SYNTHETIC, *OWN_SOURCES))

SplitStrategy = Literal["random", "temporal", "cold_user", "cold_item", "time_cutoff"]
SPLIT_STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
