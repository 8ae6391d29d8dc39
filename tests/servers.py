"""Start and stop local servers for tests: loopback only, free ports, bounded waits, whole process groups."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.isolation import BIN, environment

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to the process group (SIGKILL after `grace` seconds) and reap it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)


def start(
    command: Sequence[str], ready_url: str, log: Path, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> subprocess.Popen:
    """Start `command` in its own process group; return once `ready_url` answers 200 (at most `timeout` s)."""
    with open(log, "a") as out:
        process = subprocess.Popen(
            list(command), stdout=out, stderr=subprocess.STDOUT, env=dict(env or environment()), start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not answers(ready_url):
        if process.poll() is not None or time.monotonic() > deadline:
            # judged before stop(), which makes a server that was merely slow exit too
            state = f"exited with {process.returncode}" if process.poll() is not None else f"not ready after {timeout:.0f} s"
            stop(process)
            raise AssertionError(f"{command[0]} {state}; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)
    return process


@contextmanager
def serving(
    command: Sequence[str], ready_url: str, log: Path, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> Iterator[subprocess.Popen]:
    """`start` for the duration of the block, then `stop`."""
    process = start(command, ready_url, log, env, timeout)
    try:
        yield process
    finally:
        stop(process)


def mlflow_server(store: Path, port: int) -> list[str]:
    """`mlflow server` on loopback with a sqlite backend and its own artifact folder."""
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination",
        str(store / "artifacts"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def log_lines_seen(log: Path, line: str, count: int, timeout: float = 60.0) -> str:
    """The log's text once it holds `line` at least `count` times (a multi-worker server logs each
    worker's start as that worker comes up, possibly after the first one already answers); the
    text as it is when `timeout` passes."""
    deadline = time.monotonic() + timeout
    text = log.read_text() if log.exists() else ""
    while text.count(line) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        text = log.read_text() if log.exists() else ""
    return text
