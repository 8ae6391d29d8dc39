"""Top-10 lists from the cofi_ranking champion served by MLflow's own scoring server.

    .venv/bin/python benchmarks/bench_serving.py --mirror <folder holding ml-latest-small/>
    .venv/bin/python benchmarks/bench_serving.py --mirror <folder> --requests 5000 --clients 16
    .venv/bin/python benchmarks/bench_serving.py --model-dir models/cofi_ranking   # a trained model instead
    .venv/bin/python benchmarks/bench_serving.py --floor      # a fixed answer: what MLflow's server costs alone
    .venv/bin/python benchmarks/bench_serving.py --mirror <folder> --workers 1 --access-log   # MLflow's defaults

Trains cofi_ranking with the project's defaults on the train part of the ml-latest-small split
(`split.strategy: random`, the params.yaml defaults), or takes a trained model folder, logs and
registers it as champion in a temporary MLflow store (your mlflow.db is untouched), starts
`UVICORN_ACCESS_LOG=false mlflow models serve --env-manager local --workers 2` on 127.0.0.1 (the
README's command; `--workers` and `--access-log` change it) and sends `--requests` requests
{"dataframe_records": [{"user_id": u}], "params": {"k": 10}} for seeded random training users from
`--clients` threads, each on its own keep-alive HTTP connection. Reports errors (any answer other than
200 with one list of k movies), latency percentiles (client side, request sent to answer read),
requests per second over the whole run, the server's CPU time per request (user + system of the
`mlflow models serve` process and its children over the timed run: less sensitive to the machine's
other load than the latencies) and its resident memory before the first request and after the last.
Before the timed run, one answer is checked against the model's own recommend() and `--warmup`
requests are sent. The in-process figure is the loaded pyfunc's predict() for one user without HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import Params  # noqa: E402
from pipeline.data.schema import MOVIE, USER  # noqa: E402
from pipeline.models.base import TrainingData  # noqa: E402
from pipeline.models.cofi_ranking import CofiRankingModel  # noqa: E402

HOST = "127.0.0.1"
SOURCE = "ml-latest-small"


def default_mirror() -> Path:
    value = os.environ.get("RECSYS_DATA_MIRROR") or os.environ.get("RECSYS_SHARED_DATASETS")
    return Path(value) if value else REPO.parent / "shared" / "datasets"


def trained_model(mirror: Path, params: Params) -> CofiRankingModel:
    from pipeline.data.movielens import read_csv_release
    from pipeline.data.schema import RatingScale
    from pipeline.split import split_ratings

    folder = mirror / SOURCE
    if not (folder / "ratings.csv").is_file():
        sys.exit(f"{SOURCE} not found under {mirror}: pass --mirror (a folder holding {SOURCE}/)")
    ratings, movies = read_csv_release(folder)
    split = params.split
    train, _ = split_ratings(ratings, split.strategy, split.test_size, split.seed, cutoff=split.cutoff_seconds())
    started = time.perf_counter()
    model = CofiRankingModel.fit(TrainingData(train, movies, RatingScale(0.5, 5.0, 0.5)), params.cofi_ranking, progress=False)
    print(f"trained cofi_ranking on {len(train):,} ratings in {time.perf_counter() - started:.1f} s")
    return model


def register_champion(model: CofiRankingModel, params: Params) -> str:
    """Log and register `model` in the MLflow store of $MLFLOW_TRACKING_URI; its champion URI."""
    from mlflow.tracking import MlflowClient

    from pipeline import registry, tracking

    with tracking.start_run("cofi_ranking", "bench-serving", "cofi_ranking", {"source": SOURCE, "fingerprint": "bench"}) as run_id:
        uri = tracking.log_model(model, "cofi_ranking", params.serve)
    client = MlflowClient()
    name = registry.registered_name("cofi_ranking", SOURCE)
    version = registry.register(client, name, uri, run_id, {})
    client.set_registered_model_alias(name, registry.CHAMPION, version.version)
    return registry.model_alias_uri("cofi_ranking", SOURCE)


def register_floor(params: Params) -> str:
    """A pyfunc with the same signature whose answer is a fixed top-k list: what MLflow's server costs alone."""
    from pipeline import tracking

    with tracking.start_run("floor", "bench-serving", "floor", {"source": SOURCE, "fingerprint": "bench"}):
        info = mlflow.pyfunc.log_model(name="floor", python_model=FixedList(), signature=tracking.signature(params.serve))
    return info.model_uri


class FixedList(mlflow.pyfunc.PythonModel):
    """The answer's shape for each requested user, computed from nothing."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        k = int((params or {}).get("k", 10))
        movies = [{MOVIE: i, "title": f"Movie {i} (2000)", "score": 0.5} for i in range(k)]
        return [{USER: int(u), "cold_start": False, "recommendations": movies} for u in model_input[USER]]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(model_uri: str, port: int, log: Path, workers: int, access_log: bool, timeout: float = 180.0) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers)]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "UVICORN_ACCESS_LOG": str(access_log).lower()}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"mlflow models serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.25)
    stop_server(process)
    sys.exit(f"mlflow models serve not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


def tree(pid: int) -> list[int]:
    """The process and its descendants (`mlflow models serve` runs uvicorn as a child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in tree(int(child)))]


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its descendants (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        return sum(_status_kib(p, "VmRSS:") for p in tree(pid)) / 1024
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def _status_kib(pid: int, field: str) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its descendants so far (/proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def body(user: int, k: int) -> bytes:
    return json.dumps({"dataframe_records": [{USER: user}], "params": {"k": k}}).encode()


def ask(connection: http.client.HTTPConnection, payload: bytes) -> tuple[int, Any]:
    connection.request("POST", "/invocations", body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def run_clients(port: int, users: np.ndarray, k: int, clients: int) -> tuple[list[float], list[str], float]:
    """Send one request per user from `clients` threads; (latencies in s, error descriptions, wall s)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(len(users)))

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            payload = body(int(users[index]), k)
            started = time.perf_counter()
            try:
                status, answer = ask(connection, payload)
                ok = status == 200 and len(answer["predictions"][0]["recommendations"]) == k
                problem = None if ok else f"HTTP {status}: {str(answer)[:200]}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def check_answer(port: int, model: CofiRankingModel, user: int, k: int) -> None:
    status, answer = ask(http.client.HTTPConnection(HOST, port, timeout=30), body(user, k))
    served = [entry[MOVIE] for entry in answer["predictions"][0]["recommendations"]] if status == 200 else answer
    expected = model.recommend(user, n=k)[MOVIE].tolist()
    if served != expected:
        sys.exit(f"user {user}: served {served}, recommend() gives {expected}")


def in_process_ms(model_uri: str, users: np.ndarray, k: int) -> float:
    """Median ms of the loaded pyfunc's predict() for one user, without HTTP (the model's share)."""
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    times = []
    for user in users:
        frame = pd.DataFrame({USER: [int(user)]})
        started = time.perf_counter()
        pyfunc.predict(frame, params={"k": k})
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=default_mirror(), help=f"folder holding {SOURCE}/")
    parser.add_argument("--model-dir", type=Path, help="a trained cofi_ranking folder (e.g. models/cofi_ranking) instead of training")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes (mlflow models serve --workers)")
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's line per request (UVICORN_ACCESS_LOG)")
    parser.add_argument("--floor", action="store_true", help="serve a fixed list instead of the model: MLflow's own share")
    args = parser.parse_args()

    params = Params()
    model = None if args.floor else CofiRankingModel.load(args.model_dir) if args.model_dir else trained_model(args.mirror, params)
    known = np.arange(1, 611) if model is None else model.seen.user_ids
    users = np.random.default_rng(args.seed).choice(known, size=args.requests + args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        model_uri = register_floor(params) if model is None else register_champion(model, params)
        print(f"in-process pyfunc predict, one user, top-{args.k}: {in_process_ms(model_uri, users[:200], args.k):.2f} ms (median)")
        port = free_port()
        process = start_server(model_uri, port, Path(tmp) / "serve.log", args.workers, args.access_log)
        try:
            if model is not None:
                check_answer(port, model, int(users[0]), args.k)
            rss_before = rss_mib(process.pid)
            run_clients(port, users[: args.warmup], args.k, args.clients)
            cpu_before = cpu_seconds(process.pid)
            latencies, errors, wall = run_clients(port, users[args.warmup :], args.k, args.clients)
            cpu = cpu_seconds(process.pid) - cpu_before
            rss_after = rss_mib(process.pid)
        finally:
            stop_server(process)
    ms = np.asarray(latencies) * 1000
    served = "a fixed list (--floor)" if model is None else "cofi_ranking"
    print(
        f"{served}, {args.workers} worker(s), access log {'on' if args.access_log else 'off'}: "
        f"{len(latencies):,} top-{args.k} requests from {args.clients} clients: {len(errors)} errors; "
        f"p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
        f"max {ms.max():.1f} ms; {len(latencies) / wall:.0f} requests/s; server CPU {cpu / len(latencies) * 1000:.2f} ms per request; "
        f"server RSS {rss_before:.0f} MiB before, {rss_after:.0f} MiB after; load average {os.getloadavg()[0]:.1f}"
    )
    for problem in errors[:5]:
        print(f"  error: {problem}")


if __name__ == "__main__":
    main()
