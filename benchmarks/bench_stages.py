"""Wall time and peak memory of each pipeline stage, each run as its own `recsys <stage>` process.

    python benchmarks/bench_stages.py --source synthetic --n-ratings 1000000
    python benchmarks/bench_stages.py --source ml-latest-small --mirror /path/to/mirror
    python benchmarks/bench_stages.py --n-ratings 25000000 --workdir /tmp/b25 --stages evaluate  # re-run one stage

Runs in a temporary folder (your data/ and mlflow.db are untouched) and prints a Markdown table.
Peak memory is the stage process's own maximum resident set size (os.wait4), in MiB.
--workdir keeps the folder (and reuses what earlier stages wrote there); --json appends one JSON
line per stage to a file (what bench_scale.py reads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ["ingest", "validate", "split", "features"]


def synthetic_size(n_ratings: int) -> dict[str, int]:
    """Users and movies growing with the ratings, about 170 ratings per user as in MovieLens."""
    n_users = max(600, n_ratings // 170)
    n_movies = max(3000, int(n_ratings**0.5 * 10))
    return {"n_users": n_users, "n_movies": n_movies, "n_ratings": n_ratings, "min_user_ratings": 20}


def run_stage(stage: str, workdir: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one stage process."""
    recsys = str(Path(sys.executable).parent / "recsys")
    start = time.perf_counter()
    process = subprocess.Popen([recsys, stage], cwd=workdir, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {stage} failed")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="synthetic")
    parser.add_argument(
        "--n-ratings", type=int, default=None, help="synthetic size, users and movies grown with it (default: params.yaml's data)"
    )
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--stages", nargs="+", default=DATA_STAGES)
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="extra params")
    parser.add_argument("--workdir", default=None, help="run here and keep it (default: a temporary folder, removed)")
    parser.add_argument("--json", default=None, help="append one JSON line per stage to this file")
    args = parser.parse_args()

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = args.source
    if args.mirror:
        params["data"]["mirror"] = str(Path(args.mirror).resolve())
    if args.source == "synthetic" and args.n_ratings is not None:
        params["data"]["synthetic"].update(synthetic_size(args.n_ratings))
    n_ratings = params["data"]["synthetic"]["n_ratings"]
    for assignment in args.set:
        key, value = assignment.split("=", 1)
        *sections, leaf = key.split(".")
        target = params
        for section in sections:
            target = target[section]
        target[leaf] = yaml.safe_load(value)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="recsys-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}", CI="true")
        label = f"{args.source}" + (f" {n_ratings:,} ratings" if args.source == "synthetic" else "")
        print(f"\n{label}\n\n| stage | wall s | peak MiB |\n|---|---|---|")
        for stage in args.stages:
            wall, peak = run_stage(stage, workdir, env)
            print(f"| {stage} | {wall:.2f} | {peak:.0f} |", flush=True)
            if args.json:
                record = {"n_ratings": n_ratings, "stage": stage, "wall_s": wall, "peak_mib": peak}
                with open(args.json, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
