"""Reading and writing what several stages share: the split, the movies, dataset.json, model outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import records
from pipeline.data.schema import MOVIE, RATING, RATINGS_COLUMNS, TIMESTAMP, USER, RatingScale, conform_movies, conform_ratings
from pipeline.errors import DataError, ModelError
from pipeline.io import atomic_outputs, read_json
from pipeline.models.base import Recommender, TrainingData
from pipeline.paths import DEFAULT_LAYOUT, Layout

MODEL_COLUMNS = (USER, MOVIE, RATING)  # what training and evaluation read: timestamps stay on disk
RECORDED_NUMBERS = ("seconds",)  # wall time differs run to run: in records/train_<name>.json, not among the metrics


def read_ratings(path: Path, columns: Sequence[str] = MODEL_COLUMNS) -> pd.DataFrame:
    """The ratings file's `columns`, in contract dtypes.

    A file already in the contract dtypes (what ingest and split write) is read column by column
    with nothing else: no timestamp when the models do not need it, no conversion copies. Any other
    file is read whole and conformed, so a broken one fails with the data contract's error."""
    try:
        schema = pq.read_schema(path)
    except Exception:  # not parquet at all: let pandas raise its own error below
        schema = None
    contract = {USER: pa.int64(), MOVIE: pa.int64(), RATING: pa.float64(), TIMESTAMP: pa.int64()}
    contract_schema = schema is not None and set(schema.names) == set(RATINGS_COLUMNS)
    if contract_schema and all(schema.field(c).type == contract[c] for c in RATINGS_COLUMNS):
        frame = pd.read_parquet(path, columns=list(columns))
        typed = all(str(frame[c].dtype) == ("float64" if c == RATING else "int64") for c in columns)
        if typed and (RATING not in columns or np.isfinite(frame[RATING].to_numpy()).all()):
            return frame
    return conform_ratings(pd.read_parquet(path), str(path))[list(columns)]


def read_movies(layout: Layout) -> pd.DataFrame:
    return conform_movies(pd.read_parquet(layout.raw_movies), str(layout.raw_movies))


def read_training_data(layout: Layout) -> tuple[TrainingData, dict[str, Any]]:
    """(what the models are fitted on, dataset.json): the train ratings, the movies and the rating
    scale, each checked against the data contract."""
    layout.require(layout.train, layout.raw_movies, layout.raw_meta)
    meta = read_json(layout.raw_meta)
    scale = RatingScale.from_meta(meta, str(layout.raw_meta))
    dataset_identity(meta, layout.raw_meta)
    return TrainingData(read_ratings(layout.train), read_movies(layout), scale, source=str(layout.train)), meta


def dataset_identity(dataset: Mapping[str, Any], file: Path = DEFAULT_LAYOUT.raw_meta) -> dict[str, str]:
    """What every training stage records in records/train_<name>.json about its data, from dataset.json
    (`file`): `dataset_fingerprint` and `data_source`; a DataError naming the file when either is missing."""
    for key in ("fingerprint", "source"):
        value = dataset.get(key)
        if not isinstance(value, str) or not value:
            raise DataError(f"{file}: needs a non-empty string '{key}' (got {value!r}); re-run the ingest stage")
    return {"dataset_fingerprint": dataset["fingerprint"], "data_source": dataset["source"]}


def check_trained_on(info: Mapping[str, Any], dataset: Mapping[str, Any], name: str, layout: Layout) -> None:
    """A ModelError unless `info` (records/train_<name>.json) holds the fingerprint of the current dataset.

    A missing fingerprint is an error too: which data trained the model is then unknown."""
    file = layout.training_record(name)
    recorded, current = info.get("dataset_fingerprint"), dataset_identity(dataset, layout.raw_meta)["dataset_fingerprint"]
    if not recorded:
        raise ModelError(
            f"{file}: no 'dataset_fingerprint', so the data the {name} model was trained on is unknown; "
            f"retrain it (dvc repro --force train_{name})"
        )
    if recorded != current:
        raise ModelError(
            f"{file}: the {name} model was trained on another dataset (fingerprint {str(recorded)[:12]}, "
            f"{layout.raw_meta} has {current[:12]}); retrain it (dvc repro)"
        )


def training_record(name: str, layout: Layout) -> dict[str, Any]:
    """records/train_<name>.json (MLflow run and model URI, dataset, seconds), or a ModelError when it is missing."""
    file = layout.training_record(name)
    if not file.is_file():
        raise ModelError(f"{file}: not found; train the {name} model first (dvc repro train_{name})")
    info = read_json(file)
    if not isinstance(info, dict):
        raise ModelError(f"{file}: not a JSON object; retrain the {name} model (dvc repro --force train_{name})")
    return info


def save_trained(model: Recommender, result: Mapping[str, Any], curve: pd.DataFrame, name: str, layout: Layout) -> None:
    """models/<name>/, the training `result` (its numbers in metrics/train_<name>.json, the rest in
    records/train_<name>.json) and the learning curve's CSV, all or nothing."""
    outputs = (layout.model_dir(name), layout.training_metrics(name), layout.training_record(name), layout.learning_curve(name))
    with atomic_outputs(*outputs) as (model_dir, metrics_file, record_file, curve_csv):
        model.save(model_dir)
        records.write(metrics_file, record_file, result, RECORDED_NUMBERS)
        curve.to_csv(curve_csv, index=False)
