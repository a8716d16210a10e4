"""The architecture as an executable check: which layer may import which.

The layers of ``scanner/`` (the first name under it: ``core``, ``db``,
``usecases``, ``api``, ``cli``, or a top-level module such as ``shapes``):

- ``core`` imports only the standard library, itself and ``errors`` (what
  else it may not touch, the clock or the network, is ``tests/core/test_purity.py``);
- ``db`` imports only ``core``, ``errors``, ``settings`` and itself: storage,
  never rendering, delivery policy or scheduling;
- nothing imports ``api`` but ``api`` itself and the entry points that wire
  it (``cli``: ``serve`` runs the API); nothing imports ``cli`` but ``cli``
  and ``scanner/__main__.py``;
- no ``scanner.*`` import inside a function outside ``cli/`` (a command may
  defer loading what only it needs): an import that hides in a function hides
  a dependency, or a cycle the layers should not have.

Every ``scanner.*`` import counts, ``if TYPE_CHECKING:`` ones included (a
type is a dependency too). Violations owned by streams still at work are
listed, exactly, in ``PENDING`` (file and what, not the line, which moves):
the test fails on any other violation, and on a listed one that no longer
exists (delete its line then).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import scanner

SCANNER = Path(scanner.__file__).parent

# layer -> the scanner layers it may import (None: any, within the other rules).
MAY_IMPORT: dict[str, frozenset[str] | None] = {
    "core": frozenset({"core", "errors"}),
    "errors": frozenset(),
    "db": frozenset({"core", "errors", "settings", "db"}),
}
# layer -> the only layers that may import it.
IMPORTED_ONLY_BY: dict[str, frozenset[str]] = {
    "api": frozenset({"api", "cli", "__main__"}),
    "cli": frozenset({"cli", "__main__"}),
}
# Layers whose functions may import scanner modules (commands defer their own imports).
FUNCTION_IMPORTS_ALLOWED = frozenset({"cli"})

# Violations of streams that are removing them (issue 10), exactly as reported below.
PENDING: dict[str, str] = {}


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@dataclass(frozen=True, slots=True)
class Import:
    line: int
    module: str  # the scanner module imported, absolute
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    """``scanner/db/hooks.py`` -> ``scanner.db.hooks``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer of a scanner module: the first name under ``scanner`` (``""``: the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_module(root: Path, dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def scanner_imports(source: str, module: str, root: Path, *, is_package: bool) -> Iterator[Import]:
    """Every import of a scanner module in ``source`` (``module`` resolves relative ones)."""
    package = module if is_package else module.rpartition(".")[0]

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "scanner" or alias.name.startswith("scanner."):
                        yield Import(child.lineno, alias.name, in_function)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                if target != "scanner" and not target.startswith("scanner."):
                    continue
                for alias in child.names:
                    # "from scanner import shapes" names a module, "from scanner import X" a value.
                    sub = f"{target}.{alias.name}"
                    yield Import(
                        child.lineno, sub if _is_module(root, sub) else target, in_function
                    )
            yield from walk(child, inside)

    yield from walk(ast.parse(source), False)


def check_module(path: Path, root: Path) -> list[Violation]:
    """The layer rules' violations in one module, in line order."""
    module = module_name(path, root)
    layer = layer_of(module)
    shown = str(path.relative_to(root.parent))
    found: set[Violation] = set()
    source = path.read_text(encoding="utf-8")
    for imp in scanner_imports(source, module, root, is_package=path.name == "__init__.py"):
        target = layer_of(imp.module)
        allowed = MAY_IMPORT.get(layer)
        # The root package holds the version only: anyone may read it.
        if allowed is not None and target not in allowed and target != "":
            found.add(Violation(shown, imp.line, f"{layer} imports {imp.module}"))
        importers = IMPORTED_ONLY_BY.get(target)
        if importers is not None and layer not in importers:
            found.add(Violation(shown, imp.line, f"{layer} imports {imp.module}"))
        if imp.in_function and layer not in FUNCTION_IMPORTS_ALLOWED:
            found.add(Violation(shown, imp.line, f"function-level import of {imp.module}"))
    return sorted(found)


def check_tree(root: Path) -> list[Violation]:
    """Every violation in the package at ``root`` (a directory named ``scanner``)."""
    return [v for path in sorted(root.rglob("*.py")) for v in check_module(path, root)]


# -- the rule, on cors-scanner itself -------------------------------------------------------


def test_the_layers_hold() -> None:
    found = {f"{v.path}: {v.what}" for v in check_tree(SCANNER)}
    new = sorted(found - set(PENDING))
    gone = sorted(set(PENDING) - found)
    assert not new, "imports across the layers' rules (see the docstring):\n" + "\n".join(new)
    assert not gone, "fixed: delete these lines from PENDING:\n" + "\n".join(gone)


def test_the_walk_covers_every_layer() -> None:
    layers = {layer_of(module_name(p, SCANNER)) for p in SCANNER.rglob("*.py")}
    assert {"core", "db", "usecases", "api", "cli", "shapes", "errors"} <= layers


# -- the checker itself, on a synthetic tree ------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "scanner"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checker_fails_on_every_forbidden_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "errors.py": "",
            "settings.py": "from scanner import errors\n",
            "shapes.py": "from scanner import db\n",
            "core/__init__.py": "",
            "core/rules.py": "from scanner.errors import InputError\nfrom scanner.db import x\n",
            "core/more.py": "from .rules import y\nfrom .. import settings\n",
            "db/__init__.py": "",
            "db/store.py": (
                "from scanner.core.rules import y\n"
                "from scanner.settings import Settings\n"
                "from scanner.alerts.slack import body\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from scanner.reports.json import doc\n"
            ),
            "alerts/__init__.py": "",
            "alerts/slack.py": "def body():\n    from scanner.db.store import x\n    return x\n",
            "reports/__init__.py": "",
            "reports/json.py": "import scanner.api.app\n",
            "api/__init__.py": "",
            "api/app.py": "from scanner.api import routes\nfrom scanner.usecases import runs\n",
            "api/routes.py": "",
            "usecases/__init__.py": "",
            "usecases/runs.py": "from scanner.cli import main\nfrom scanner import shapes\n",
            "cli/__init__.py": "def main():\n    from scanner.api.app import create\n",
            "__main__.py": "from scanner.cli import main\n",
        },
    )
    assert [str(v) for v in check_tree(root)] == [
        "scanner/alerts/slack.py:2: function-level import of scanner.db.store",
        "scanner/core/more.py:2: core imports scanner.settings",
        "scanner/core/rules.py:2: core imports scanner.db",
        "scanner/db/store.py:3: db imports scanner.alerts.slack",
        "scanner/db/store.py:6: db imports scanner.reports.json",
        "scanner/reports/json.py:1: reports imports scanner.api.app",
        "scanner/usecases/runs.py:1: usecases imports scanner.cli",
    ]


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("scanner.db.store", "from ..core import rules", ["core"]),
        ("scanner.db.store", "from . import tables", ["db"]),
        ("scanner.db", "from .store import x", ["db"]),  # a package resolves against itself
        ("scanner.api.app", "import scanner.cli.serve as serve", ["cli"]),
        ("scanner.shapes", "from scanner import __version__", [""]),
        ("scanner.shapes", "import json\nfrom sqlalchemy import select", []),
    ],
)
def test_imports_resolve_to_their_layer(
    tmp_path: Path, module: str, source: str, expected: list[str]
) -> None:
    root = _tree(tmp_path, {"core/rules.py": "", "db/tables.py": "", "cli/serve.py": ""})
    is_package = module == "scanner.db"
    found = [
        layer_of(i.module) for i in scanner_imports(source, module, root, is_package=is_package)
    ]
    assert found == expected
