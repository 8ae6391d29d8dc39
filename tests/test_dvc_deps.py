"""Every dvc.yaml stage depends on all the project code its command runs, so that `dvc repro`
re-runs a stage whenever that code changes.

The code a stage runs is computed from the sources with `ast`:

- the entry is pipeline/cli.py: what it runs when imported (its top-level imports and statements,
  which register the stage commands), following calls to its own functions (the stage command,
  `_run_stage` and what they call), plus the stage module that `STAGES` names for the command;
  cli.py's other commands (recommend, similar, compare) are not followed;
- from a module, every `pipeline` import, at the top or inside a function, brings in the imported
  module and the `__init__.py` of each package above it;
- a "pipeline.module:Class" string is a module loaded dynamically (`loading.class_at`); it counts
  for code that uses the name holding it (e.g. `TRAINED_MODELS` of loading.py), or whatever imports
  the whole module.

A dep covers a module when it is the module's file or a folder above it. Each `pipeline/` dep must
exist and cover at least one module the stage runs.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from pipeline.models.loading import TRAINED_MODELS
from pipeline.paths import Layout
from tests.isolation import REPO

PACKAGE = "pipeline"
ENTRY = f"{PACKAGE}.cli"
LOADER = re.compile(rf"^({PACKAGE}(?:\.\w+)*):\w+(?:\.\w+)*$")  # "pipeline.models.cofi:CofiModel"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

Ref = tuple[str, str | None]  # (module, name taken from it) or (module, None) for the whole module
Names = frozenset[str] | None  # names of a module that are used; None: the whole module


@dataclass(frozen=True)
class Code:
    """What some code of a module does that matters here: its imports, its "module:Class" strings
    and the names it reads."""

    imports: tuple[ast.Import | ast.ImportFrom, ...]
    loads: frozenset[str]
    reads: frozenset[str]

    @classmethod
    def of(cls, nodes: Iterable[ast.AST]) -> Code:
        inner = [n for node in nodes for n in ast.walk(node)]
        strings = (n.value for n in inner if isinstance(n, ast.Constant) and isinstance(n.value, str))
        return cls(
            imports=tuple(n for n in inner if isinstance(n, ast.Import | ast.ImportFrom)),
            loads=frozenset(match[1] for value in strings if (match := LOADER.match(value))),
            reads=frozenset(n.id for n in inner if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)),
        )


@dataclass(frozen=True)
class Statement:
    """A top-level statement: the names it defines, the part that runs on import (a definition's
    decorators, defaults and bases; any other statement whole) and the whole statement."""

    node: ast.stmt
    defines: frozenset[str]
    on_import: Code
    whole: Code


def _statement(node: ast.stmt) -> Statement:
    if isinstance(node, DEFINITIONS):
        header: list[ast.AST] = [*node.decorator_list]
        if isinstance(node, ast.ClassDef):
            header += [*node.bases, *node.keywords]
        else:
            header += [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        return Statement(node, frozenset({node.name}), Code.of(header), Code.of([node]))
    defines: frozenset[str] = frozenset()  # imports, loops, `if` blocks...: run on import, define nothing
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        defines = frozenset(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    whole = Code.of([node])
    return Statement(node, defines, whole, whole)


@cache
def _parse(file: Path) -> tuple[Statement, ...]:
    return tuple(_statement(node) for node in ast.parse(file.read_text(encoding="utf-8"), str(file)).body)


class Source:
    """The modules of the `pipeline` package under `root`, parsed on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def relative(self, module: str) -> str:
        file = self.file(module)
        assert file is not None, f"{module}: no such module under {self.root}"
        return file.relative_to(self.root).as_posix()

    def statements(self, module: str) -> tuple[Statement, ...]:
        return _parse(self.root / self.relative(module))

    def packages(self, module: str) -> list[str]:
        """The packages whose __init__.py runs before `module` (pipeline, pipeline.models, ...)."""
        parts = module.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts)) if self.file(".".join(parts[:i]))]

    def _resolve(self, module: str, node: ast.Import | ast.ImportFrom) -> Iterator[Ref]:
        """The project modules (and names taken from them) that an import statement loads."""
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names if alias.name.split(".")[0] == PACKAGE)
            return
        base = node.module or ""
        if node.level:
            here = module if self.relative(module).endswith("__init__.py") else module.rpartition(".")[0]
            anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
            base = f"{anchor}.{base}" if base else anchor
        if base.split(".")[0] != PACKAGE:
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            yield (submodule, None) if self.file(submodule) else (base, alias.name)

    def used(self, module: str, names: Names) -> list[Code]:
        """The code of `module` that runs when `names` of it are used (None: the whole module): what
        runs on import, and the statements defining the names reached from there, transitively.
        An assignment runs on import, but a string it stores is used only through its name."""
        statements = self.statements(module)
        if names is None:
            return [s.whole for s in statements]
        defined = {n for s in statements for n in s.defines}
        reached: set[str] = set()
        todo = set(names) | {n for s in statements for n in s.on_import.reads if n in defined}
        while todo:
            reached |= todo
            todo = {n for s in statements if s.defines & todo for n in s.whole.reads if n in defined} - reached
        headers = [s.on_import for s in statements if isinstance(s.node, DEFINITIONS)]
        return headers + [s.whole for s in statements if not s.defines or s.defines & reached]

    def imports(self, module: str, code: list[Code]) -> list[Ref]:
        """The project imports in `code`, at any depth (inside functions too)."""
        return sorted({ref for part in code for node in part.imports for ref in self._resolve(module, node)}, key=str)

    def stage_modules(self) -> dict[str, str]:
        """`recsys <command>` -> the stage module that cli.py's STAGES maps it to."""
        for statement in self.statements(ENTRY):
            if "STAGES" in statement.defines:
                table = ast.literal_eval(statement.node.value)  # type: ignore[attr-defined]
                return {command: module for command, (module, _help) in table.items()}
        raise AssertionError(f"{self.relative(ENTRY)}: no STAGES table")

    @cache  # noqa: B019 - a few Source objects, alive for the test session
    def closure(self, command: str) -> dict[str, str]:
        """Every code file `recsys <command>` runs -> why (the nearest module bringing it in)."""
        stages = self.stage_modules()
        assert command in stages, f"`recsys {command}` is not a stage command of {self.relative(ENTRY)}"
        found: dict[str, str] = {}
        queue: deque[tuple[str, Names, str]] = deque(
            [(ENTRY, frozenset(), "the `recsys` command"), (stages[command], None, f"STAGES of {ENTRY}")]
        )
        done: set[tuple[str, Names]] = set()
        while queue:  # breadth first: each file's reason is its nearest importer
            module, names, why = queue.popleft()
            if (module, names) in done:
                continue
            done.add((module, names))
            found.setdefault(module, why)
            for package in self.packages(module):
                queue.append((package, frozenset(), f"package of {module}"))
            used = self.used(module, names)
            # cli.py: only what the stage command runs; any other module: every import in it
            for child, name in self.imports(module, used if module == ENTRY else self.used(module, None)):
                queue.append((child, None if name is None else frozenset({name}), f"imported by {module}"))
            for loaded in sorted({m for part in used for m in part.loads}):
                queue.append((loaded, None, f"named as 'module:Class' in {module}"))
        return {self.relative(module): why for module, why in found.items()}


def _covers(dep: str, file: str) -> bool:
    return file == dep or file.startswith(dep.rstrip("/") + "/")


def problems(stages: dict, source: Source) -> list[str]:
    """One line per code file a stage runs without depending on it, or per stale code dep."""
    lines = []
    for stage, spec in stages.items():
        words = spec["cmd"].split()
        assert words[0] == "recsys" and len(words) == 2, f"stage {stage}: cmd {spec['cmd']!r} is not `recsys <command>`"
        runs = source.closure(words[1])
        deps = [str(d) for d in spec.get("deps", [])]
        for file, why in sorted(runs.items()):
            if not any(_covers(dep, file) for dep in deps):
                lines.append(f"stage {stage}: missing dep {file} ({why})")
        for dep in deps:
            if dep.startswith(f"{PACKAGE}/") and not any(_covers(dep, file) for file in runs):
                exists = (source.root / dep).exists()
                lines.append(f"stage {stage}: dep {dep} {'is code the stage never runs' if exists else 'does not exist'}")
    return lines


def load_stages(root: Path = REPO) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.fixture(scope="module")
def source() -> Source:
    return Source(REPO)


def test_every_stage_depends_on_all_the_code_it_runs(source):
    assert problems(load_stages(), source) == []


def test_the_closure_follows_lazy_imports_loader_strings_and_package_inits(source):
    evaluate = source.closure("evaluate")
    assert "pipeline/tracking.py" in evaluate  # `from pipeline import tracking` inside a function
    assert evaluate["pipeline/models/cofi.py"] == "named as 'module:Class' in pipeline.models.loading"  # TRAINED_MODELS
    assert {"pipeline/__init__.py", "pipeline/models/__init__.py", "pipeline/cli.py"} <= set(evaluate)
    ingest = source.closure("ingest")
    assert "pipeline/models/cofi.py" not in ingest and "pipeline/titles.py" not in ingest  # not the other commands
    # tracking imports loading.class_at, which reads no "module:Class" string: training cofi runs no content code
    assert "pipeline/models/loading.py" in source.closure("train-cofi")
    assert "pipeline/models/content.py" not in source.closure("train-cofi")


def test_a_dvc_yaml_missing_a_dep_is_caught(source):
    broken = copy.deepcopy(load_stages())
    broken["evaluate"]["deps"].remove("pipeline/models/loading.py")
    broken["promote"]["deps"] = [d for d in broken["promote"]["deps"] if not str(d).startswith("pipeline/evaluation")]
    found = problems(broken, source)
    assert {
        "stage evaluate: missing dep pipeline/models/loading.py (imported by pipeline.stages.evaluate)",
        "stage promote: missing dep pipeline/evaluation/metrics.py (imported by pipeline.stages.promote)",
    } <= set(found)
    assert any(line.startswith("stage promote: missing dep pipeline/evaluation/__init__.py") for line in found)
    assert all(line.startswith(("stage evaluate:", "stage promote:")) for line in found)


def test_removing_any_code_dep_is_caught(source):
    stages = load_stages()
    code_deps = [(stage, dep) for stage, spec in stages.items() for dep in spec["deps"] if str(dep).startswith(f"{PACKAGE}/")]
    assert len(code_deps) > 8 * 10
    for stage, dep in code_deps:
        broken = copy.deepcopy(stages)
        broken[stage]["deps"].remove(dep)
        found = problems(broken, source)
        assert found and all(line.startswith(f"stage {stage}: missing dep {dep}") for line in found), (stage, dep, found)


def test_a_stale_or_unused_code_dep_is_caught(source):
    broken = copy.deepcopy(load_stages())
    broken["ingest"]["deps"] += ["pipeline/models/cofi.py", "pipeline/gone.py"]
    assert problems(broken, source) == [
        "stage ingest: dep pipeline/models/cofi.py is code the stage never runs",
        "stage ingest: dep pipeline/gone.py does not exist",
    ]


def test_a_module_added_later_is_caught_without_changing_this_test(source, tmp_path):
    """A new module imported (lazily, relatively) by cofi.py must be a dep of every stage running cofi."""
    shutil.copytree(REPO / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / PACKAGE / "models" / "added_later.py").write_text('"""A module added later."""\n', encoding="utf-8")
    cofi = tmp_path / PACKAGE / "models" / "cofi.py"
    cofi.write_text(cofi.read_text(encoding="utf-8") + "\n\ndef _later():\n    from .added_later import __doc__\n")
    stages = load_stages()
    running_cofi = [s for s, spec in stages.items() if "pipeline/models/cofi.py" in source.closure(spec["cmd"].split()[1])]
    assert {"train_cofi", "evaluate", "promote"} <= set(running_cofi)
    assert problems(stages, Source(tmp_path)) == [
        f"stage {stage}: missing dep pipeline/models/added_later.py (imported by pipeline.models.cofi)" for stage in running_cofi
    ]


def _paths(entries: list) -> set[str]:
    """The paths of a stage's deps, outs or plots (an entry is a path, or {path: options})."""
    return {str(next(iter(entry))) if isinstance(entry, dict) else str(entry) for entry in entries}


def test_evaluate_depends_on_the_learning_curve_of_every_trained_model_its_report_draws():
    stages = load_stages()
    curves = {Layout().learning_curve(name).as_posix() for name in TRAINED_MODELS}
    assert curves <= _paths(stages["evaluate"]["deps"])
    written = {path for spec in stages.values() for key in ("outs", "plots") for path in _paths(spec.get(key, []))}
    assert curves <= written  # each one a training stage's output
