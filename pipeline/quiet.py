"""Quiet terminals: library chatter stays off the terminal unless asked for.

Without `--verbose` (or RECSYS_VERBOSE=1) a `recsys` process hides what the libraries print on
their own: TensorFlow's native start-up lines (oneDNN, cudart, the cuInit failure on machines
without a GPU), Python warnings raised inside MLflow, PySpark, Great Expectations, TensorFlow
and Keras, MLflow's INFO/WARNING log lines and its artifact progress bars. The project's own
output, errors and long-running progress bars (downloads, training) are untouched.

`configure` runs first thing in the `recsys` process (`pipeline.cli.main`), before any of those
libraries is imported: most read their settings from the environment when they are imported,
and every process a stage starts inherits that environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "RECSYS_VERBOSE"

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR lines
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # bars for copies of a few small files
}
# Verbose: TensorFlow's own default, which pipeline.models.content would otherwise lower.
VERBOSE_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "0"}
NOISY_LOGGERS = ("absl", "tensorflow", "great_expectations", "py4j")
NOISY_WARNING_MODULES = r"(mlflow|pyspark|great_expectations|tensorflow|keras|absl|google\.protobuf)(\.|$)"
# Modules whose first import prints native log lines straight to file descriptor 2.
NATIVE_NOISE_IMPORTS = frozenset({"tensorflow"})
# Device nodes of an NVIDIA GPU (Linux) or of a GPU passed through to WSL2.
GPU_DEVICE_GLOBS = ("/dev/nvidia[0-9]*", "/dev/dxg")


def verbose_requested(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """True for `recsys --verbose ...` or RECSYS_VERBOSE set to 1/true/yes."""
    return VERBOSE_FLAG in argv or environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes"}


def has_gpu_device(root: Path = Path("/")) -> bool:
    return any(any(root.glob(pattern.lstrip("/"))) for pattern in GPU_DEVICE_GLOBS)


def quiet_environment(gpu_present: bool) -> dict[str, str]:
    """The variables a quiet process sets (where the user has not set them already).

    Without any GPU device node, CUDA_VISIBLE_DEVICES="" lets TensorFlow skip probing for one (the
    probe is what logs "failed call to cuInit"); a machine with a GPU keeps using it.
    """
    return {**QUIET_ENVIRONMENT, **({} if gpu_present else {"CUDA_VISIBLE_DEVICES": ""})}


def configure(verbose: bool, environ: Any = os.environ) -> None:
    """Quiet this process and the processes it starts, or (verbose) leave the libraries as they are."""
    if verbose:
        environ[VERBOSE_ENV] = "1"
        for key, value in VERBOSE_ENVIRONMENT.items():
            environ.setdefault(key, value)
        return
    for key, value in quiet_environment(has_gpu_device()).items():
        environ.setdefault(key, value)
    warnings.filterwarnings("ignore", module=NOISY_WARNING_MODULES)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not any(isinstance(finder, _NativeQuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NativeQuietFinder(NATIVE_NOISE_IMPORTS))


@contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Send file descriptor 2 (what C and C++ code writes to) to a temporary file for the block.

    If the block raises, what was written is replayed on the real stderr before the exception
    goes on, so a failed import still shows the library's own explanation.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to quiet
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _NativeQuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader with native stderr captured, then hands the module back to it."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with native_stderr_captured():
            self.loader.exec_module(module)


class _NativeQuietFinder(importlib.abc.MetaPathFinder):
    """Finds the listed top-level modules as the path finder does, with their first import quieted.

    TensorFlow's native libraries log their start-up lines while the package is imported, before
    any log setting of theirs applies; nothing but the file descriptor reaches them.
    """

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _NativeQuietLoader(spec.loader)
        return spec
