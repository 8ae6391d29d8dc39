"""Memory guard: estimate a stage's peak memory from the dataset's size and stop before an OOM kill.

peak MiB ~ BASE_MIB[stage] + MIB_PER_MILLION[stage] * millions of ratings in the dataset (all of
them, train + test), fitted on the synthetic sizes of benchmarks/bench_scale.py (100k..25M ratings, whole-process
peak RSS of each stage; benchmarks/README.md, "Scale"): the slope between 5M and 25M rounded up,
the base raised until every measured size lies under the line, so the guard errs toward stopping
early. With the default 8 GB, the first stage to refuse is train_cofi at ~45M ratings
(ml-32m passes every stage).

`check_stage_memory` runs before every stage command (pipeline/cli.py): ingest sizes the data
from the params (synthetic n_ratings, or the release's published size; own data is not sized
before it is read), later stages from data/raw/dataset.json. A stage the table does not list, or a missing dataset.json, is not checked
(the stage itself then reports the missing input).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.choices import OWN_SOURCES, SYNTHETIC
from pipeline.config import Params
from pipeline.data.movielens import RELEASES
from pipeline.errors import RecsysError

MIB = 1 << 20
# Whole-process peak: imports (TensorFlow ~1 GB in the training stages) + per million ratings.
BASE_MIB = {
    "ingest": 250,
    "validate": 450,
    "split": 300,
    "features": 300,
    "train_cofi": 1800,  # TensorFlow (engine: tensorflow; the numpy engine needs less) + the gradients of one full-batch chunk
    "train_content": 1100,
    "train_cofi_ranking": 900,  # NumPy ALS (its fit alone peaked at 859 MiB at 5M ratings) + MLflow's import
    "train_content_ranking": 1100,  # TensorFlow, as train_content; its per-rating tables are the positives and the bags
    "evaluate": 1300,
    "recommend": 1100,  # TensorFlow's import when content_ranking is chosen, as train_content_ranking; cofi_ranking needs far less
}
MIB_PER_MILLION = {  # measured slopes between 5M and 25M ratings: 100, 122, 137, 89, 124, 85, 115
    "ingest": 100,
    "validate": 125,
    "split": 140,
    "features": 90,
    "train_cofi": 130,
    "train_content": 90,
    "train_cofi_ranking": 130,  # not measured past 5M: train_cofi's slope, an upper bound for the same factors
    "train_content_ranking": 90,  # not measured past 5M: train_content's slope
    "evaluate": 120,
    "recommend": 30,  # cofi_ranking, every user's top 10 at 25M ratings: 858 MiB (benchmarks/bench_batch_recommend.py)
}


def estimate_peak_mib(stage: str, n_ratings: int) -> float:
    """Estimated whole-process peak MiB of `stage` on a dataset of `n_ratings` ratings."""
    return BASE_MIB[stage] + MIB_PER_MILLION[stage] * n_ratings / 1e6


def check_memory(stage: str, n_ratings: int, max_memory_gb: float, source: str) -> None:
    """RecsysError when the estimate exceeds `max_memory_gb`, naming the estimate and the param to change."""
    if stage not in BASE_MIB:
        return
    estimate_gb = estimate_peak_mib(stage, n_ratings) * MIB / 1e9
    if estimate_gb > max_memory_gb:
        raise RecsysError(
            f"{stage}: {n_ratings:,} ratings ({source}) need an estimated {estimate_gb:.1f} GB of memory at peak, "
            f"over data.max_memory_gb = {max_memory_gb:g}; raise data.max_memory_gb if this machine has the memory "
            f"(estimate: pipeline/memory.py), or use a smaller data set"
        )


def dataset_ratings(stage: str, params: Params, meta_file: Path) -> tuple[int, str] | None:
    """(number of ratings, where it comes from) for the guard, or None when unknown."""
    if stage == "ingest":
        if params.data.source in OWN_SOURCES:
            return None  # own data: its size is known once read (later stages check dataset.json)
        if params.data.source == SYNTHETIC:
            return params.data.synthetic.n_ratings, "data.synthetic.n_ratings"
        return RELEASES[params.data.source].n_ratings, f"the size of {params.data.source}"
    try:
        n = int(json.loads(meta_file.read_text(encoding="utf-8"))["n_ratings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return n, str(meta_file)


def check_stage_memory(stage: str, params: Params, meta_file: Path) -> None:
    """The guard run before a stage: dataset size from the params (ingest) or `meta_file` (dataset.json)."""
    found = dataset_ratings(stage, params, meta_file)
    if found is not None:
        check_memory(stage, found[0], params.data.max_memory_gb, found[1])
