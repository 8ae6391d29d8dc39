"""The GitHub workflows: the GitHub workflow JSON schema (check-jsonschema), actionlint when installed,
and structural checks with PyYAML and bash."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.isolation import REPO

WORKFLOWS = REPO / ".github" / "workflows"
CI, RETRAIN = WORKFLOWS / "ci.yml", WORKFLOWS / "retrain.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
CONTEXTS = {"github", "env", "secrets", "vars", "runner", "steps", "inputs", "matrix", "needs", "job", "strategy"}
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def actionlint() -> str | None:
    found = Path(sys.executable).parent / "actionlint"
    return str(found) if found.is_file() else shutil.which("actionlint")


def test_actionlint_finds_nothing_in_either_workflow():
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (the structural checks below still run)")
    result = subprocess.run([binary, "-no-color", str(CI), str(RETRAIN)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its bundled (offline) GitHub workflow schema."""
    binary = Path(sys.executable).parent / "check-jsonschema"
    command = [str(binary), "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_both_workflows_match_the_github_workflow_schema(tmp_path: Path):
    result = schema_check(CI, RETRAIN)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(CI.read_text().replace("runs-on:", "runs_on:"))
    assert schema_check(broken).returncode != 0, "the schema check must be able to fail"


def cron_field_ok(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            return False
    return True


def valid_cron(text: str) -> bool:
    fields = text.split()
    return len(fields) == 5 and all(cron_field_ok(f, lo, hi) for f, (lo, hi) in zip(fields, CRON_RANGES, strict=True))


@pytest.mark.parametrize(
    ("cron", "ok"), [("17 3 * * 1", True), ("*/15 0-6 1,15 * 1-5", True), ("60 3 * * 1", False), ("17 3 * *", False), ("a b c d e", False)]
)
def test_the_cron_checker_itself(cron, ok):
    assert valid_cron(cron) is ok


def test_ci_runs_make_test_on_push_and_pull_request():
    workflow = load(CI)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert any(step.get("run", "").strip() == "make test" for step in steps(workflow))


def test_retrain_runs_weekly_and_by_hand_one_at_a_time():
    workflow = load(RETRAIN)
    schedule = workflow["on"]["schedule"]
    assert len(schedule) == 1 and valid_cron(schedule[0]["cron"])
    assert schedule[0]["cron"].split()[2:4] == ["*", "*"] and schedule[0]["cron"].split()[4] != "*"  # weekly
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is False


def test_retrain_runs_make_retrain_then_reports_and_opens_a_pull_request():
    runs = [step.get("run", "") for step in steps(load(RETRAIN))]
    order = [i for i, text in enumerate(runs) if text.strip() == "make retrain"]
    assert len(order) == 1
    summary = next(i for i, text in enumerate(runs) if "GITHUB_STEP_SUMMARY" in text)
    assert "reports/report.md" in runs[summary] and summary > order[0]
    assert any("dvc metrics diff --md" in text for text in runs)
    pull_request = next(step for step in steps(load(RETRAIN)) if step.get("uses", "").startswith("peter-evans/create-pull-request@"))
    paths = pull_request["with"]["add-paths"].split()
    assert "dvc.lock" in paths and "metrics/*.json" in paths
    assert "pull-request.md" in pull_request["with"]["body-path"]


def uncached_outputs() -> set[str]:
    """Every output of dvc.yaml that DVC does not cache (cache: false): git holds them."""
    found = set()
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            if isinstance(entry, dict):
                found |= {path for path, options in entry.items() if options and options.get("cache") is False}
    return found


def covered(path: str, patterns: list[str]) -> bool:
    return any(Path(path).match(pattern) or path == pattern or path.startswith(pattern.rstrip("/") + "/") for pattern in patterns)


def test_a_failed_retrain_restores_and_the_pull_request_commits_every_uncached_output():
    makefile = (REPO / "Makefile").read_text()
    keep = re.search(r"^RETRAIN_KEEP := (.+)$", makefile, re.MULTILINE)
    assert keep is not None
    outputs = uncached_outputs()
    assert {
        "data/accepted.json",
        "metrics/drift.json",
        "metrics/promotion.json",
        "records/promotion.json",
        "records/train_cofi.json",
    } <= outputs
    assert [path for path in sorted(outputs) if not covered(path, keep[1].split())] == []  # dvc checkout cannot restore them
    pull_request = next(step for step in steps(load(RETRAIN)) if step.get("uses", "").startswith("peter-evans/create-pull-request@"))
    assert [path for path in sorted(outputs) if not covered(path, pull_request["with"]["add-paths"].split())] == []


@pytest.mark.parametrize("path", [CI, RETRAIN], ids=["ci", "retrain"])
def test_actions_are_pinned_and_expressions_use_known_contexts(path):
    text = path.read_text()
    for step in steps(load(path)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*", step["uses"]), step["uses"]
        else:
            assert step.get("run", "").strip(), step
    for expression in EXPRESSION.findall(text):
        names = set(re.findall(r"(?<![\w.'])([a-z_]+)\.", expression))
        assert names and names <= CONTEXTS, expression


@pytest.mark.parametrize("path", [CI, RETRAIN], ids=["ci", "retrain"])
def test_every_run_script_is_valid_bash(path):
    for step in steps(load(path)):
        script = EXPRESSION.sub("placeholder", step.get("run", ""))
        result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, f"{step.get('name', script[:40])}: {result.stderr}"


def test_every_secret_the_retrain_workflow_reads_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Scheduled retraining") :]
    secrets = set(re.findall(r"secrets\.([A-Z_]+)", RETRAIN.read_text()))
    assert secrets >= {"MLFLOW_TRACKING_URI", "DVC_REMOTE_URL"}
    missing = sorted(name for name in secrets if f"`{name}`" not in section)
    assert not missing, f"README 'Scheduled retraining' does not document: {missing}"


def restore(workspace: Path) -> subprocess.CompletedProcess[str]:
    """`make retrain-restore` (what a failed `make retrain` runs) in `workspace`, which has no dvc.lock."""
    return subprocess.run(["make", "-f", str(REPO / "Makefile"), "-C", str(workspace), "retrain-restore"], capture_output=True, text=True)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_failed_retrain_puts_the_uncached_outputs_back_and_keeps_the_rejected_report(tmp_path: Path):
    backup = tmp_path / ".retrain-backup"
    write(backup / "metrics/evaluation.json", "before")
    write(backup / "records/evaluation.json", "record before")
    write(backup / "data/accepted.json", "accepted before")
    write(tmp_path / "metrics/evaluation.json", "after")
    write(tmp_path / "records/evaluation.json", "record after")
    write(tmp_path / "metrics/drift.json", "written by the failed run")
    write(tmp_path / "records/drift.json", "written by the failed run")
    write(tmp_path / "data/accepted.json", "accepted by the failed run")
    write(tmp_path / "reports/validation/summary.json", '{\n  "success": false\n}\n')
    result = restore(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "metrics/evaluation.json").read_text() == "before" and not (tmp_path / "metrics/drift.json").exists()
    assert (tmp_path / "records/evaluation.json").read_text() == "record before" and not (tmp_path / "records/drift.json").exists()
    assert (tmp_path / "data/accepted.json").read_text() == "accepted before"
    assert (tmp_path / "reports/validation-rejected/summary.json").is_file() and not (tmp_path / "reports/validation").exists()
    assert "the rejected data's validation report: reports/validation-rejected/index.html" in result.stderr
    assert not backup.exists()


def test_a_failure_after_promote_wrote_its_decisions_restores_nothing(tmp_path: Path):
    # the same scores as before (metrics/), but promote registered new versions (records/)
    for folder in (tmp_path / ".retrain-backup", tmp_path):
        write(folder / "metrics/promotion.json", "the same scores")
    write(tmp_path / ".retrain-backup/records/promotion.json", "old versions and decisions")
    write(tmp_path / "records/promotion.json", "new versions and decisions: the champions moved")
    write(tmp_path / "metrics/evaluation.json", "of the models the champions came from")
    result = restore(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "a step after promote failed; the champions moved, so the workspace keeps this retrain's outputs" in result.stderr
    assert (tmp_path / "records/promotion.json").read_text() == "new versions and decisions: the champions moved"
    assert (tmp_path / "metrics/evaluation.json").is_file() and not (tmp_path / ".retrain-backup").exists()
