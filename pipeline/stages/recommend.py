"""Stage `recommend`: every training user's top-k list from the best ranking model of this run.

Reads {metrics,records}/evaluation.json (which ranking model has the best promote.ranking_metric), that model
from models/<name>/ (the local one evaluate scored, not a registry version),
records/train_<name>.json and data/raw/dataset.json (the model was trained on this data); writes
data/recommendations/top_k.parquet (user_id, rank, movie_id, score: the contract's ids, as in
every other output; `recsys export` maps hashed ids back to the source's) and meta.json (which
model and why) together, or nothing on error. Only the chosen model's code is imported: TensorFlow
only for content_ranking.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline import records
from pipeline.batch import best_ranking_model, write_top_k
from pipeline.config import Params
from pipeline.data.ids import KEPT
from pipeline.data.schema import MOVIE, USER
from pipeline.io import atomic_outputs, read_json
from pipeline.models.loading import load_trained, ranking_models
from pipeline.paths import Layout
from pipeline.stages.inputs import check_trained_on, dataset_identity, training_record


def check_trained_on_this_data(name: str, dataset: dict[str, Any], layout: Layout) -> None:
    """records/train_<name>.json must hold the fingerprint of data/raw/dataset.json."""
    check_trained_on(training_record(name, layout), dataset, name, layout)


def run(params: Params, layout: Layout) -> None:
    evaluation_record = layout.record_of(layout.evaluation)
    layout.require(layout.evaluation, evaluation_record, layout.raw_meta)
    cfg = params.recommend
    evaluation = records.read(layout.evaluation, evaluation_record)
    choice = best_ranking_model(evaluation, params.promote.ranking_metric, ranking_models(), str(layout.evaluation))
    dataset = read_json(layout.raw_meta)
    check_trained_on_this_data(choice.model, dataset, layout)
    model = load_trained(choice.model, layout.models)
    users = model.seen.user_ids  # every user with a training rating
    meta = {
        **choice.to_dict(),
        "model_dir": layout.model_dir(choice.model).relative_to(layout.root).as_posix(),
        "k": cfg.k,
        "users": len(users),
        "dataset_fingerprint": dataset_identity(dataset, layout.raw_meta)["dataset_fingerprint"],
        "ids": {kind: dataset.get("ids", {}).get(kind, KEPT) for kind in (USER, MOVIE)},
    }
    with atomic_outputs(layout.top_k, layout.top_k_meta) as (top_k, meta_file):
        meta["rows"] = write_top_k(model, users, cfg.k, cfg.batch_size, top_k)
        meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"recommend: top {cfg.k} for {len(users):,} users ({meta['rows']:,} rows) in {layout.top_k}; {choice.reason()}")
