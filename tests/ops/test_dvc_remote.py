"""A fresh clone gets every pipeline output from the local-folder DVC remote and has nothing to run."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.ops.conftest import git
from tests.servers import environment

pytestmark = pytest.mark.slow


def dvc(repo, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["dvc", *args], cwd=repo, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def locked_outputs(repo) -> dict[str, str]:
    """path -> md5 of every output recorded in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def test_a_fresh_clone_pulls_every_output_and_is_up_to_date(scenario, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(scenario.repo), str(clone))
    outputs = locked_outputs(clone)
    assert {"data/raw", "models/cofi", "models/content", "metrics/evaluation.json", "metrics/promotion.json"} <= set(outputs)
    assert not (clone / "models").exists()  # models come from the remote, not from git

    dvc(clone, "pull")
    for path in outputs:
        assert (clone / path).exists(), path
    assert "Data and pipelines are up to date." in dvc(clone, "status").stdout
    assert "up to date" in dvc(clone, "repro", "--dry").stdout
    assert locked_outputs(clone) == locked_outputs(scenario.repo)
