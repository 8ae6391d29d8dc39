"""Load a trained model by name (`cofi`, `content`) from its folder under models/."""

from __future__ import annotations

import importlib
from pathlib import Path

from pipeline import paths
from pipeline.errors import ModelError
from pipeline.models.base import Recommender

TRAINED_MODELS = {
    "cofi": "pipeline.models.cofi:CofiModel",
    "content": "pipeline.models.content:ContentModel",
}


def class_at(loader: str) -> type:
    """The class named by "module:Class"."""
    module_name, class_name = loader.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def model_class(name: str) -> type:
    if name not in TRAINED_MODELS:
        raise ModelError(f"unknown model '{name}'; choose one of {', '.join(TRAINED_MODELS)}")
    return class_at(TRAINED_MODELS[name])


def load_trained(name: str, models_dir: str | Path = paths.MODELS) -> Recommender:
    """The model trained by the pipeline, or a ModelError naming the missing folder."""
    cls = model_class(name)
    directory = Path(models_dir) / name
    if not directory.is_dir() or not any(directory.iterdir()):
        raise ModelError(f"{directory}: no trained {name} model here (run `dvc repro` first)")
    return cls.load(directory)
