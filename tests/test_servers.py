"""tests/servers.py: a server that does not come up is reported as it was, slow or dead."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.servers import HOST, free_port, start


def test_a_server_still_starting_at_the_deadline_is_reported_as_not_ready(tmp_path: Path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(AssertionError, match=r"not ready after 1 s"):
        start(sleeper, f"http://{HOST}:{free_port()}/", tmp_path / "log", timeout=1)


def test_a_server_that_exits_is_reported_with_its_exit_code(tmp_path: Path):
    with pytest.raises(AssertionError, match=r"exited with 3"):
        start([sys.executable, "-c", "raise SystemExit(3)"], f"http://{HOST}:{free_port()}/", tmp_path / "log", timeout=60)
