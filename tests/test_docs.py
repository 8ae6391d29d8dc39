"""The repository stands on its own and its docs say what the code does.

- No tracked file cites documents that are not in the repository: design, benchmark or style notes
  by file name, the folder beside the checkout where such notes live, or numbered issues. (The
  test datasets' default folder may be built in code from its parts, as tests/conftest.py does.)
- The README names exactly the modules that import MLflow.
"""

from __future__ import annotations

import ast
import re
import subprocess

from tests.isolation import REPO

# written so that this file does not match itself
OUTSIDE = re.compile(r"\b(?:DESIGN|BENCHMARKS|STYLE)\.md\b|\.\./shared\b|\bissues?\s+#?\d+", re.IGNORECASE)
MLFLOW_SENTENCE = "MLflow is imported only by "


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name]


def citations(text: str) -> list[str]:
    return [match[0] for match in OUTSIDE.finditer(text)]


def test_the_pattern_finds_what_it_must_and_nothing_else():
    cited = "see DESIGN" + ".md, benchmarks" + ".md; ../" + "shared/x; issue" + " 5, item 6; Issues" + " #12"
    assert len(citations(cited)) == 5
    assert citations('benchmarks/README.md, REPO.parent / "shared" / "datasets", an issue with 5 rows') == []


def test_no_tracked_file_cites_documents_outside_the_repository():
    found = []
    for name in tracked_files():
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):  # images; files deleted but not yet committed
            continue
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{name}:{number}: {cited!r} in {line.strip()!r}" for cited in citations(line)]
    assert found == []


def mlflow_importers() -> set[str]:
    """pipeline/ modules with an `import mlflow...` or `from mlflow... import`, at any depth."""
    found = set()
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name.split(".")[0] == "mlflow" for name in names):
                found.add(path.relative_to(REPO).as_posix())
    return found


def test_the_readme_names_the_modules_that_import_mlflow():
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert MLFLOW_SENTENCE in readme
    sentence = readme.split(MLFLOW_SENTENCE, 1)[1].split(":", 1)[0]
    assert set(re.findall(r"`([^`]+\.py)`", sentence)) == mlflow_importers()
