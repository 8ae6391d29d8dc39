"""Content model on the ml-latest-small split: the course's training setup vs the project's defaults.

    python benchmarks/bench_content.py                                   # course vs defaults, seeds 1 2 3
    python benchmarks/bench_content.py --seeds 1 --config big=batch_size=2048,patience=null
    python benchmarks/bench_content.py --validation --no-course --config e15=epochs=15   # choosing a default

Split: ratings.csv in file order, train_test_split(test_size=0.2, random_state=42) (pipeline.split.split_ratings "random");
features from train only (pipeline.features, genre_prior 0). Training: `ContentModel.fit` wall time
and test RMSE (stars, clipped to 0.5..5) per seed; configurations interleaved seed by seed so
machine noise hits them alike; the table shows the median time, the time ratio to the course and
the mean (min..max) RMSE. Inference: scoring every catalogue movie for every user with the towers
run once per user and once per movie (`score_block`, movie cache cleared first; median of 3),
against running the whole network once per (user, movie) pair (timed on a few users, scaled up).
--validation fits on 80% of the train split and scores the other 20% (random, seed 7), never the test
split: the figures a default is chosen on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import ContentParams  # noqa: E402
from pipeline.data.movielens import read_csv_release  # noqa: E402
from pipeline.data.schema import MOVIE, RATING, USER, RatingScale  # noqa: E402
from pipeline.features import build_features  # noqa: E402
from pipeline.models.base import TrainingData  # noqa: E402
from pipeline.models.content import ContentModel  # noqa: E402
from pipeline.split import split_ratings  # noqa: E402

SCALE = RatingScale(0.5, 5.0, 0.5)
COURSE = {"batch_size": 32, "epochs": 30, "validation_fraction": 0.0, "patience": None}


def parse_config(text: str) -> tuple[str, dict]:
    """'name=key=value,key=value' -> (name, overrides); values parsed as YAML (null, 0.1, [8])."""
    name, _, rest = text.partition("=")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def load_split(mirror: Path, validation: bool = False):
    """(train, test, movies, features); with validation, test is 20% of the train split (seed 7), never the test split:
    the slice bench_ranking_models.py --tune scores on."""
    ratings, movies = read_csv_release(mirror / "ml-latest-small")
    train, test = split_ratings(ratings, "random", 0.2, 42)
    if validation:
        train, test = split_ratings(train, "random", 0.2, 7)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    return train, test, movies, build_features(train, movies, 0.0)


def rmse(model: ContentModel, test) -> float:
    return float(np.sqrt(np.mean((model.predict(test[[USER, MOVIE]]) - test[RATING].to_numpy()) ** 2)))


def train_all(configs: dict[str, dict], seeds: list[int], data) -> tuple[dict, ContentModel]:
    train, test, movies, features = data
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in configs}
    last = None
    for seed in seeds:
        for name, overrides in configs.items():
            params = ContentParams(**{**overrides, "seed": seed})
            started = time.perf_counter()
            model = ContentModel.fit(TrainingData(train, movies, SCALE, features), params)
            seconds = time.perf_counter() - started
            results[name].append((seconds, rmse(model, test), len(model.history["loss"])))
            print(f"  {name:10s} seed {seed}: {seconds:6.1f} s, {results[name][-1][2]} epochs, RMSE {results[name][-1][1]:.4f}", flush=True)
            if name == "defaults":
                last = model
    return results, last


def inference(model: ContentModel, users: np.ndarray, sample_users: int) -> tuple[float, float]:
    """(seconds for score_block over all users, per-pair network seconds scaled to all users)."""
    times = []
    for _ in range(3):
        model._vectors = None  # the towers run again for every user and movie, as right after training
        started = time.perf_counter()
        block = model.score_block(users)
        times.append(time.perf_counter() - started)
    assert block.shape == (len(users), len(model.catalogue))
    few = users[:sample_users]
    u = np.repeat(np.searchsorted(model.user_ids, few), len(model.catalogue))
    m = np.tile(np.arange(len(model.catalogue)), len(few))
    started = time.perf_counter()
    model.network.predict([model.user_inputs[u], model.movie_inputs[m]], batch_size=65_536, verbose=0)
    per_pair = (time.perf_counter() - started) * len(users) / len(few)
    return statistics.median(times), per_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--no-course", action="store_true", help="skip the slow course setup")
    parser.add_argument("--config", action="append", default=[], help="extra configuration name=key=value,...")
    parser.add_argument("--validation", action="store_true", help="score on 20%% of the train split (seed 7), not on test")
    parser.add_argument("--sample-users", type=int, default=20, help="users timed for the per-pair comparison")
    args = parser.parse_args()

    data = load_split(args.mirror, args.validation)
    scored = "validation (of the train split)" if args.validation else "test"
    print(f"ml-latest-small: {len(data[0])} train / {len(data[1])} {scored} ratings; defaults: {ContentParams().model_dump()}")
    configs = {} if args.no_course else {"course": COURSE}
    configs["defaults"] = {}
    configs.update(parse_config(text) for text in args.config)
    results, model = train_all(configs, args.seeds, data)

    base = statistics.median(s for s, _, _ in results["course"]) if "course" in results else None
    print(f"\n| setup | median fit s | x faster than course | epochs run | {scored} RMSE mean (min..max) |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        seconds = statistics.median(s for s, _, _ in runs)
        errors = [e for _, e, _ in runs]
        speed = f"{base / seconds:.1f}" if base else "-"
        epochs = "/".join(str(n) for _, _, n in runs)
        print(
            f"| {name} {configs[name] or ''} | {seconds:.1f} | {speed} | {epochs} | "
            f"{np.mean(errors):.4f} ({min(errors):.4f}..{max(errors):.4f}) |"
        )

    users = np.unique(data[0][USER].to_numpy())
    block_s, pair_s = inference(model, users, args.sample_users)
    print(
        f"\ninference, {len(users)} users x {len(model.catalogue)} movies: score_block {block_s:.3f} s "
        f"(towers once per user and per movie); network per pair ~{pair_s:.1f} s (from {args.sample_users} users)"
    )


if __name__ == "__main__":
    main()
