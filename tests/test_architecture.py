"""The shape of the code: who may import whom, and how big a module or a function may grow.

Imports are read statically with `ast` (nested ones inside functions too), so a violation is
reported as file:line without importing anything. One runtime check confirms that the CLI loads
neither the harness nor scikit-learn's metrics.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detectors", "pipelines", "chainwatch")

# The one module outside chainwatch/harness/ that may import chainwatch.harness, and only inside
# its functions: the CLI's simulate and evaluate commands.
HARNESS_PACKAGE = "chainwatch.harness"
HARNESS_COMMAND_MODULE = "chainwatch.cli.harness"

# What each package must never import (a name and everything under it).
FORBIDDEN = {
    "detectors": ("dagster", "dagster_duckdb", "dagster_webserver", "pipelines", "chainwatch"),
    "pipelines": ("chainwatch",),
}

# The data flow inside detectors/: a sub-package may import core, itself and any sub-package of a
# lower layer (upstream), never one of its own layer or a later one. rules and anomaly are peers.
LAYERS = {
    "core": 0,
    "ingest": 1,
    "derive": 2,
    "rules": 3,
    "anomaly": 3,
    "findings": 4,
    "analyst": 5,
}
# They run every stage, so they may import every sub-package (and nothing layered imports them).
ORCHESTRATORS = ("stages", "spark")

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
# {path or qualified function name: reason}. Keep it empty, or as short as it can be.
SIZE_ALLOWLIST: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name; for `from a import b`, "a.b"
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.AST) -> None:
        self.found.append(Import(target, node.lineno, self.depth > 0))

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, self.is_package, node.level, node.module)
        for alias in node.names:
            self._add(base if alias.name == "*" else f"{base}.{alias.name}".lstrip("."), node)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("x") and __import__("x") with a literal name.
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            called in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            self._add(node.args[0].value, node)
        self.generic_visit(node)


def collect_imports(source: str, module: str, is_package: bool = False) -> list[Import]:
    collector = _ImportCollector(module, is_package)
    collector.visit(ast.parse(source))
    return collector.found


def _modules(*packages: str) -> list[Path]:
    return sorted(
        p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts
    )


@cache
def imports_of(path: Path) -> tuple[Import, ...]:
    return tuple(
        collect_imports(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    )


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _where(path: Path, imp: Import) -> str:
    return f"{path.relative_to(ROOT)}:{imp.line} imports {imp.target}"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


ALL_MODULES = _modules(*PACKAGES)
DETECTORS = _modules("detectors")
PIPELINES = _modules("pipelines")
NOT_HARNESS = [p for p in ALL_MODULES if not _under(module_name(p), HARNESS_PACKAGE)]


# --- the walker itself: each case is a mistake it must not miss --------------------------------


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import dagster", "detectors.x", False, [("dagster", 1, False)]),
        (
            "def f():\n    import dagster_duckdb\n",
            "detectors.x",
            False,
            [("dagster_duckdb", 2, True)],
        ),
        ("class C:\n    import dagster\n", "detectors.x", False, [("dagster", 2, False)]),
        (
            "if True:\n    from chainwatch import harness\n",
            "a.b",
            False,
            [("chainwatch.harness", 2, False)],
        ),
        ("f = lambda: __import__('pipelines')", "detectors.x", False, [("pipelines", 1, True)]),
        (
            "import importlib\nimportlib.import_module('chainwatch.harness')",
            "a.b",
            False,
            [("importlib", 1, False), ("chainwatch.harness", 2, False)],
        ),
        (
            "from . import merge",
            "detectors.findings.exports",
            False,
            [("detectors.findings.merge", 1, False)],
        ),
        (
            "from ..core.warehouse import connect",
            "detectors.findings.exports",
            False,
            [("detectors.core.warehouse.connect", 1, False)],
        ),
        ("from .common import x", "chainwatch.cli", True, [("chainwatch.cli.common.x", 1, False)]),
        (
            "from chainwatch.harness.simulate import *",
            "a.b",
            False,
            [("chainwatch.harness.simulate", 1, False)],
        ),
    ],
)
def test_the_import_walker_finds(source, module, is_package, expected):
    found = collect_imports(source, module, is_package)
    assert [(i.target, i.line, i.in_function) for i in found] == expected


def test_there_are_modules_to_check():
    assert len(DETECTORS) > 10 and len(PIPELINES) > 5 and len(NOT_HARNESS) > len(DETECTORS)
    assert (ROOT / "detectors" / "stages.py").is_file()


# --- import boundaries ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", DETECTORS + PIPELINES, ids=_ids(DETECTORS + PIPELINES))
def test_package_imports_nothing_forbidden(path: Path):
    """detectors/ never imports Dagster, pipelines or the CLI; pipelines/ never imports the CLI."""
    forbidden = FORBIDDEN[path.relative_to(ROOT).parts[0]]
    bad = [
        _where(path, i)
        for i in imports_of(path)
        if any(_under(i.target, name) for name in forbidden)
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", NOT_HARNESS, ids=_ids(NOT_HARNESS))
def test_harness_is_imported_only_inside_its_cli_command(path: Path):
    """Only HARNESS_COMMAND_MODULE imports chainwatch.harness, and only inside its functions, so
    no other command (and nothing in production) loads the simulator or the evaluation."""
    allowed = module_name(path) == HARNESS_COMMAND_MODULE
    bad = [
        _where(path, i) + ("" if not allowed else " at module level")
        for i in imports_of(path)
        if _under(i.target, HARNESS_PACKAGE) and not (allowed and i.in_function)
    ]
    assert not bad, "\n".join(bad)


def test_the_harness_command_module_exists():
    path = ROOT.joinpath(*HARNESS_COMMAND_MODULE.split(".")).with_suffix(".py")
    assert path.is_file(), f"HARNESS_COMMAND_MODULE names {path}, which does not exist"


def _detectors_part(module: str) -> str | None:
    """The sub-package (or top-level module) of detectors a module belongs to."""
    parts = module.split(".")
    return parts[1] if parts[0] == "detectors" and len(parts) > 1 else None


def may_import(own: str, other: str) -> bool:
    """Whether detectors/<own> may import detectors/<other> (sub-packages or top-level modules)."""
    if own == other or own in ORCHESTRATORS:
        return True
    if other in ORCHESTRATORS or own not in LAYERS or other not in LAYERS:
        return False
    return LAYERS[other] < LAYERS[own]


@pytest.mark.parametrize(
    ("own", "other", "allowed"),
    [
        ("ingest", "core", True),
        ("core", "ingest", False),
        ("derive", "ingest", True),
        ("ingest", "derive", False),
        ("rules", "derive", True),
        ("rules", "anomaly", False),
        ("anomaly", "rules", False),
        ("findings", "rules", True),
        ("rules", "findings", False),
        ("analyst", "findings", True),
        ("findings", "analyst", False),
        ("analyst", "stages", False),
        ("core", "spark", False),
        ("stages", "analyst", True),
        ("spark", "findings", True),
        ("newpart", "core", False),
    ],
)
def test_the_data_flow_rule(own, other, allowed):
    assert may_import(own, other) is allowed


@pytest.mark.parametrize("path", DETECTORS, ids=_ids(DETECTORS))
def test_detectors_data_flows_one_way(path: Path):
    """core <- ingest <- derive <- rules, anomaly <- findings <- analyst (each may import core and
    what lies upstream of it); only stages.py and spark/ may import every stage."""
    own = _detectors_part(module_name(path))
    if own is None:
        return
    assert own in LAYERS or own in ORCHESTRATORS, (
        f"detectors/{own} is in no layer: add it to LAYERS or ORCHESTRATORS"
    )
    bad = [
        _where(path, i)
        for i in imports_of(path)
        if (other := _detectors_part(i.target)) is not None and not may_import(own, other)
    ]
    assert not bad, "\n".join(bad)


def test_the_cli_loads_neither_the_harness_nor_sklearn_metrics():
    """`import chainwatch.cli` (what every command pays) leaves chainwatch.harness and
    sklearn.metrics unloaded: the harness command imports them when it runs."""
    probe = (
        "import json, sys\n"
        "import chainwatch.cli\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'chainwatch.harness' or "
        "m.startswith(('chainwatch.harness.', 'sklearn.metrics')))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


# --- sizes ---------------------------------------------------------------------------------------


def _functions(path: Path):
    """(qualified name, first line, line count) of every function and method, nested ones too."""
    prefix = module_name(path)

    def walk(node: ast.AST, scope: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{scope}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child.lineno, child.end_lineno - child.lineno + 1
                yield from walk(child, name)
            else:
                yield from walk(child, scope)

    yield from walk(ast.parse(path.read_text()), prefix)


@pytest.mark.parametrize("path", ALL_MODULES, ids=_ids(ALL_MODULES))
def test_modules_and_functions_stay_small(path: Path):
    """A module past ~600 lines or a function past ~80 is a sign two things share a room."""
    rel = str(path.relative_to(ROOT))
    too_big = []
    lines = len(path.read_text().splitlines())
    if lines > MAX_MODULE_LINES and rel not in SIZE_ALLOWLIST:
        too_big.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
    for name, line, length in _functions(path):
        if length > MAX_FUNCTION_LINES and name not in SIZE_ALLOWLIST:
            too_big.append(f"{rel}:{line} {name}: {length} lines (max {MAX_FUNCTION_LINES})")
    assert not too_big, "\n".join(too_big)


def test_size_allowlist_has_no_stale_entries():
    """Every allowlisted module or function still exists and is still over its limit."""
    oversize = set()
    for path in ALL_MODULES:
        if len(path.read_text().splitlines()) > MAX_MODULE_LINES:
            oversize.add(str(path.relative_to(ROOT)))
        oversize.update(n for n, _, length in _functions(path) if length > MAX_FUNCTION_LINES)
    assert sorted(set(SIZE_ALLOWLIST) - oversize) == []
    assert all(reason.strip() for reason in SIZE_ALLOWLIST.values())
