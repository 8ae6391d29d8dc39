"""Quiet terminals: library chatter is hidden by default and comes back with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import quiet
from tests.factories import noise_lines


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, False),
        (["--verbose", "recommend"], {}, True),
        (["recommend"], {"RECSYS_VERBOSE": "1"}, True),
        (["recommend"], {"RECSYS_VERBOSE": "true"}, True),
        (["recommend"], {"RECSYS_VERBOSE": "0"}, False),
        (["recommend", "--user", "1"], {"RECSYS_VERBOSE": ""}, False),
    ],
)
def test_verbose_is_asked_for_by_the_flag_or_the_environment(argv, environ, expected):
    assert quiet.verbose_requested(argv, environ) is expected


def test_gpu_probing_is_skipped_only_where_no_gpu_device_exists(tmp_path: Path):
    assert not quiet.has_gpu_device(tmp_path)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidia0").touch()
    assert quiet.has_gpu_device(tmp_path)
    assert quiet.quiet_environment(gpu_present=False)["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in quiet.quiet_environment(gpu_present=True)


def test_configure_sets_what_the_user_has_not_set_and_keeps_what_they_have():
    code = (
        "import os, sys; from pipeline import quiet\n"
        "env = {'TF_CPP_MIN_LOG_LEVEL': '1'}\n"
        "quiet.configure(False, env)\n"
        "print(env['TF_CPP_MIN_LOG_LEVEL'], env['MLFLOW_LOGGING_LEVEL'], env['MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'])\n"
        "verbose = {}\n"
        "quiet.configure(True, verbose)\n"
        "print(verbose)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "1 ERROR false"  # the user's TF_CPP_MIN_LOG_LEVEL=1 is kept
    assert out[1] == "{'RECSYS_VERBOSE': '1', 'TF_CPP_MIN_LOG_LEVEL': '0'}"


def test_library_warnings_are_hidden_and_the_projects_are_not():
    code = (
        "import warnings; from pipeline import quiet\n"
        "quiet.configure(False, {})\n"
        "for module in ('mlflow.types.utils', 'pyspark.sql.connect.utils', 'great_expectations.core', 'pipeline.stages.x'):\n"
        "    warnings.warn_explicit(f'from {module}', UserWarning, 'f.py', 1, module=module)\n"
    )
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert "from pipeline.stages.x" in err
    assert "from mlflow" not in err and "from pyspark" not in err and "from great_expectations" not in err


def test_native_stderr_is_dropped_on_success_and_replayed_on_failure(capfd: pytest.CaptureFixture[str]):
    with quiet.native_stderr_captured():
        os.write(2, b"native chatter\n")
    assert "native chatter" not in capfd.readouterr().err
    with pytest.raises(ImportError), quiet.native_stderr_captured():
        os.write(2, b"why the import failed\n")
        raise ImportError("boom")
    assert "why the import failed" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err  # the real stderr is back


def run_tensorflow(verbose: bool) -> subprocess.CompletedProcess[str]:
    """A fresh process that configures quiet (or verbose) mode, then imports TensorFlow and runs an op."""
    code = f"from pipeline import quiet\nquiet.configure({verbose})\nimport tensorflow as tf\nprint(float(tf.constant(2.0) * 3.0))\n"
    env = {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "RECSYS_VERBOSE", "CUDA_VISIBLE_DEVICES"}}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)


@pytest.mark.slow  # two fresh TensorFlow imports
def test_tensorflow_start_up_lines_are_hidden_and_verbose_brings_them_back():
    quiet_run = run_tensorflow(verbose=False)
    assert quiet_run.stdout.strip() == "6.0"
    assert noise_lines(quiet_run.stderr) == [], quiet_run.stderr
    verbose_run = run_tensorflow(verbose=True)
    if not noise_lines(verbose_run.stderr):
        pytest.skip("this TensorFlow build prints no start-up lines even when verbose")
    assert verbose_run.stdout.strip() == "6.0"
