"""Errors the user is meant to read: one line naming what is wrong and where."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RecsysError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line and exits 1."""


class ConfigError(RecsysError):
    """params.yaml holds an unknown key, a wrong type or an impossible value."""


class DataError(RecsysError):
    """A data file breaks the data contract."""


class ModelError(RecsysError):
    """A model folder is missing, corrupt or does not match the data it is used with."""


def describe_examples(values: Iterable[Any], limit: int = 3) -> str:
    """Render up to `limit` example values for an error message."""
    shown = [repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:limit]]
    return ", ".join(shown)


def data_error(file: str, problem: str, *, column: str | None = None, count: int | None = None, examples: Iterable[Any] = ()) -> DataError:
    """Build the project's standard data error: `file: column 'c': N rows <problem> (e.g. ...)`."""
    parts = [str(file)]
    if column is not None:
        parts.append(f"column '{column}'")
    message = ": ".join(parts) + ": "
    if count is not None:
        message += f"{count} row{'s' if count != 1 else ''} "
    message += problem
    shown = describe_examples(examples)
    if shown:
        message += f" (e.g. {shown})"
    return DataError(message)


class ModelSkipped(RecsysError):
    """A model that cannot be fitted on this data within its configured limits (e.g. a dense matrix
    larger than allowed): callers report it as skipped, with this message as the reason."""
