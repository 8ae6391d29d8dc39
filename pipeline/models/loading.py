"""Load a trained model by name (`cofi`, `content`, `cofi_ranking`, `content_ranking`) from its folder under models/."""

from __future__ import annotations

import importlib
from pathlib import Path

from pipeline.choices import FAMILIES, OBJECTIVES
from pipeline.errors import ModelError
from pipeline.models.base import Recommender
from pipeline.paths import DEFAULT_LAYOUT

TRAINED_MODELS = {
    "cofi": "pipeline.models.cofi:CofiModel",
    "content": "pipeline.models.content:ContentModel",
    "cofi_ranking": "pipeline.models.cofi_ranking:CofiRankingModel",
    "content_ranking": "pipeline.models.content_retrieval:ContentRankingModel",
}


def ranking_models() -> tuple[str, ...]:
    """The trained models made for top-N lists, in FAMILIES' order; by name, so choosing among them imports none."""
    return tuple(names["ranking"] for names in FAMILIES.values() if names["ranking"] in TRAINED_MODELS)


def class_at(loader: str) -> type[Recommender]:
    """The model class named by "module:Class" (a Recommender)."""
    module_name, class_name = loader.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def model_class(name: str) -> type[Recommender]:
    if name not in TRAINED_MODELS:
        raise ModelError(f"unknown model '{name}'; choose one of {', '.join(TRAINED_MODELS)}")
    return class_at(TRAINED_MODELS[name])


def load_trained(name: str, models_dir: str | Path = DEFAULT_LAYOUT.models) -> Recommender:
    """The model trained by the pipeline, or a ModelError naming the missing folder."""
    cls = model_class(name)
    directory = Path(models_dir) / name
    if not directory.is_dir() or not any(directory.iterdir()):
        raise ModelError(f"{directory}: no trained {name} model here (run `dvc repro` first)")
    return cls.load(directory)


def is_trained(name: str, models_dir: str | Path = DEFAULT_LAYOUT.models) -> bool:
    directory = Path(models_dir) / name
    return name in TRAINED_MODELS and directory.is_dir() and any(directory.iterdir())


def model_for(family: str, objective: str = "ranking", models_dir: str | Path = DEFAULT_LAYOUT.models) -> tuple[str, str | None]:
    """(model name, a note or None) for a family's `objective`: the ranking model when it is trained,
    else the rating model and a note saying so."""
    if family not in FAMILIES:
        raise ModelError(f"unknown model '{family}'; choose one of {', '.join(FAMILIES)}")
    if objective not in OBJECTIVES:
        raise ModelError(f"unknown objective '{objective}'; choose one of {', '.join(OBJECTIVES)}")
    names = FAMILIES[family]
    if objective == "rating" or is_trained(names["ranking"], models_dir):
        return names[objective], None
    return names["rating"], (
        f"note: no trained {names['ranking']} model in {Path(models_dir) / names['ranking']}; "
        f"listing by the {names['rating']} model's predicted ratings"
    )
