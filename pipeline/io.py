"""Atomic output: write to a temporary sibling, rename into place only when everything succeeded."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import data_error


def _tmp_sibling(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(tmp: Path, final: Path) -> None:
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextmanager
def atomic_outputs(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield temporary paths for `paths`; on success move them all into place, on error remove them.

    Each temporary path does not exist yet: the caller creates a file or a directory there.
    A failed block leaves every final path exactly as it was.
    """
    finals = [Path(p) for p in paths]
    tmps = [_tmp_sibling(p) for p in finals]
    try:
        yield tmps
    except BaseException:
        for tmp in tmps:
            _remove(tmp)
        raise
    for tmp, final in zip(tmps, finals, strict=True):
        if not tmp.exists():
            raise FileNotFoundError(f"stage promised {final} but wrote nothing there")
    for tmp, final in zip(tmps, finals, strict=True):
        _replace(tmp, final)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically, pretty-printed with a trailing newline."""
    with atomic_outputs(path) as (tmp,):
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def require(path: str | os.PathLike[str], made_by: str) -> None:
    """A DataError when the input file `path` is missing, naming the stage that writes it."""
    if not Path(path).is_file():
        raise data_error(str(path), f"not found; run the {made_by} stage first")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write one parquet file atomically (no index)."""
    with atomic_outputs(path) as (tmp,):
        frame.to_parquet(tmp, index=False)
