"""Scaling table and plot: every stage on 100k, 1M, 5M and 25M synthetic ratings (bench_stages.py per size).

    python benchmarks/bench_scale.py                                  # all four sizes (~1 h on 2 cores)
    python benchmarks/bench_scale.py --sizes 100000 1000000 --content-epochs 0
    python benchmarks/bench_scale.py --report-only                    # table + plot from earlier results

Each size runs `bench_stages.py --workdir <workdir>/<n>` (one process per stage, peak RSS by
os.wait4) and appends one JSON line per stage to <workdir>/stages.jsonl; cofi seconds per
iteration and content seconds per epoch come from the stage's records/train_<name>.json (fit wall
seconds) and metrics/train_<name>.json (iterations or epochs run, so one-off setup is included). --content-epochs N caps the
content model's epochs on sizes >= --cap-from (default 5M), where 30 epochs take hours here.
Writes the Markdown table to stdout and <workdir>/scale.md, the plot to --plot (PNG).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = (100_000, 1_000_000, 5_000_000, 25_000_000)
STAGES = ("ingest", "validate", "split", "features", "train-cofi", "train-content", "evaluate")


def run_size(n: int, workdir: Path, stages: list[str], extra: list[str]) -> None:
    folder = workdir / str(n)
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, str(HERE / "bench_stages.py"), "--source", "synthetic", "--n-ratings", str(n)]
    command += ["--workdir", str(folder), "--json", str(workdir / "stages.jsonl"), "--stages", *stages]
    if extra:
        command += ["--set", *extra]
    subprocess.run(command, check=True)
    for name in ("cofi", "content"):  # keep what the table needs (counts in metrics/, seconds in records/), drop the data (25M: ~2 GB)
        files = [folder / kind / f"train_{name}.json" for kind in ("metrics", "records")]
        if all(path.is_file() for path in files):
            joined = {key: value for path in files for key, value in json.loads(path.read_text()).items()}  # both are flat
            (workdir / f"train_{name}_{n}.json").write_text(json.dumps(joined))
    shutil.rmtree(folder / "data", ignore_errors=True)


def per_step(workdir: Path, n: int, name: str, count_key: str) -> float | None:
    path = workdir / f"train_{name}_{n}.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return float(metrics["seconds"]) / max(int(metrics[count_key]), 1)


def collect(workdir: Path) -> dict[int, dict[str, Any]]:
    """{n_ratings: {stage: (wall s, peak MiB), 'cofi_s_per_iteration', 'content_s_per_epoch', ...}} (latest run wins)."""
    table: dict[int, dict[str, Any]] = {}
    for line in (workdir / "stages.jsonl").read_text().splitlines():
        record = json.loads(line)
        table.setdefault(record["n_ratings"], {})[record["stage"]] = (record["wall_s"], record["peak_mib"])
    for n, row in table.items():
        row["cofi_s_per_iteration"] = per_step(workdir, n, "cofi", "iterations_run")
        row["content_s_per_epoch"] = per_step(workdir, n, "content", "epochs_run")
        content = workdir / f"train_content_{n}.json"
        row["content_epochs"] = json.loads(content.read_text())["epochs_run"] if content.is_file() else None
    return dict(sorted(table.items()))


def markdown(table: dict[int, dict[str, Any]]) -> str:
    def cell(value: tuple[float, float] | None, index: int, fmt: str) -> str:
        return "-" if value is None else format(value[index], fmt)

    sizes = list(table)
    head = "| stage | " + " | ".join(f"{n:,}" for n in sizes) + " |\n|---|" + "---|" * len(sizes)
    lines = ["wall seconds per stage (own process)", "", head]
    lines += [f"| {s} | " + " | ".join(cell(table[n].get(s), 0, ".1f") for n in sizes) + " |" for s in STAGES]
    lines += ["", "peak RSS MiB per stage (whole process)", "", head]
    lines += [f"| {s} | " + " | ".join(cell(table[n].get(s), 1, ",.0f") for n in sizes) + " |" for s in STAGES]
    peaks = [max((v[1] for k, v in table[n].items() if k in STAGES), default=0) for n in sizes]
    lines.append("| **largest stage** | " + " | ".join(f"**{p:,.0f}**" for p in peaks) + " |")

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines += ["", "| training | " + " | ".join(f"{n:,}" for n in sizes) + " |\n|---|" + "---|" * len(sizes)]
    lines.append("| cofi s / iteration | " + " | ".join(number(table[n]["cofi_s_per_iteration"]) for n in sizes) + " |")
    lines.append("| content s / epoch | " + " | ".join(number(table[n]["content_s_per_epoch"]) for n in sizes) + " |")
    lines.append("| content epochs run | " + " | ".join(str(table[n]["content_epochs"] or "-") for n in sizes) + " |")
    return "\n".join(lines) + "\n"


def plot(table: dict[int, dict[str, Any]], target: Path) -> None:
    from matplotlib.figure import Figure

    sizes = list(table)
    figure = Figure(figsize=(10, 4), layout="constrained")
    wall, memory = figure.subplots(1, 2)
    for stage in STAGES:
        points = [(n, table[n][stage]) for n in sizes if stage in table[n]]
        if points:
            xs = [n for n, _ in points]
            wall.plot(xs, [v[0] for _, v in points], marker="o", label=stage)
            memory.plot(xs, [v[1] / 1024 for _, v in points], marker="o", label=stage)
    memory.axhline(8, color="black", linestyle="--", linewidth=1, label="8 GB target")
    wall.set(xscale="log", yscale="log", xlabel="ratings", ylabel="wall seconds", title="wall time per stage")
    memory.set(xscale="log", xlabel="ratings", ylabel="peak RSS GiB", title="peak memory per stage")
    memory.legend(fontsize="small")
    figure.savefig(target, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--stages", nargs="+", default=list(STAGES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsys-scale"))
    parser.add_argument("--content-epochs", type=int, default=1, help="epoch cap on large sizes (0: no cap)")
    parser.add_argument("--cap-from", type=int, default=5_000_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="extra params, every size")
    parser.add_argument("--plot", type=Path, default=HERE / "scale.png")
    parser.add_argument("--report-only", action="store_true", help="no runs: table and plot from --workdir")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for n in args.sizes:
            capped = args.content_epochs > 0 and n >= args.cap_from
            run_size(n, args.workdir, args.stages, args.set + ([f"content.epochs={args.content_epochs}"] if capped else []))
    table = collect(args.workdir)
    text = markdown(table)
    (args.workdir / "scale.md").write_text(text)
    print(text)
    plot(table, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
