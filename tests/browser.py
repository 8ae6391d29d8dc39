"""A real headless browser for the page tests: Chromium takes a screenshot, the tests read its pixels.

`screenshot` skips the test when no Chromium is installed (.ci/run installs Debian's `chromium`
where it can). The browser runs with a proxy that refuses every connection, so a page that needs
the network shows up blank instead of quietly loading it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    return found


def external_resources(page: str) -> list[str]:
    """<script>/<link>/<img>/<iframe> tags that load something from another host."""
    return [match.group(0) for match in EXTERNAL.finditer(page)]


def screenshot(page: Path, work: Path, size: tuple[int, int] = (1200, 900)) -> np.ndarray:
    """The page rendered by headless Chromium, as an (height, width, 3) uint8 array."""
    from PIL import Image

    png = work / f"{page.stem}.png"
    command = [
        browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=10000",
        f"--user-data-dir={work / 'profile'}", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
        page.resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot ({result.returncode}): {result.stderr[-2000:]}"
    return np.asarray(Image.open(png).convert("RGB"))


def share_not_white(pixels: np.ndarray) -> float:
    return float((pixels.min(axis=2) < 235).mean())


def count_near(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    """Pixels within `tolerance` of the colour on every channel."""
    return int((np.abs(pixels.astype(np.int16) - np.array(rgb, np.int16)).max(axis=2) <= tolerance).sum())
