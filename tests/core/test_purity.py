"""The dependency rule as an executable check: ``scanner/core`` is pure.

Standard library, ``scanner.core.*`` and ``scanner.errors`` only; no clock,
no randomness, no environment, no file or network I/O. Time and random tokens
are parameters.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import scanner.core

CORE = Path(scanner.core.__file__).parent
ROOT = CORE.parent.parent

# Standard-library modules that are I/O, processes, randomness or dynamic imports.
FORBIDDEN_MODULES = frozenset(
    {
        "asyncio",
        "ftplib",
        "glob",
        "http",
        "imaplib",
        "importlib",
        "multiprocessing",
        "pathlib",
        "poplib",
        "random",
        "secrets",
        "select",
        "selectors",
        "shutil",
        "smtplib",
        "socket",
        "socketserver",
        "sqlite3",
        "ssl",
        "subprocess",
        "tempfile",
        "urllib.request",
        "webbrowser",
    }
)

# Qualified names (after resolving import aliases) that read the clock, the
# environment, randomness or files.
FORBIDDEN_NAMES = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
        "time.process_time",
        "time.sleep",
        "os.environ",
        "os.environb",
        "os.getenv",
        "os.putenv",
        "os.urandom",
        "os.open",
        "os.system",
        "os.popen",
        "io.open",
        "uuid.uuid1",
        "uuid.uuid4",
    }
)

# Builtins that do I/O or import dynamically, flagged where they are called.
FORBIDDEN_BUILTINS = frozenset(
    {"open", "input", "print", "breakpoint", "__import__", "exec", "eval"}
)


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _module_allowed(module: str) -> bool:
    if module == "scanner.errors" or module == "scanner.core" or module.startswith("scanner.core."):
        return True
    if module.split(".")[0] not in sys.stdlib_module_names:
        return False
    return not any(module == m or module.startswith(m + ".") for m in FORBIDDEN_MODULES)


def find_violations(source: str, path: str, package: str = "scanner.core") -> list[Violation]:
    """Every impure import or use in one module's source, in line order."""
    tree = ast.parse(source, filename=path)
    found: list[Violation] = []
    aliases: dict[str, str] = {}  # local name -> qualified name

    def flag(node: ast.AST, what: str) -> None:
        found.append(Violation(path, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name):
                    flag(node, f"imports {alias.name}")
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parent, node.module] if node.module else parent)
            else:
                module = node.module or ""
            for alias in node.names:
                qualified = f"{module}.{alias.name}"
                # "from scanner import errors" names a module, not an attribute.
                target = qualified if module == "scanner" else module
                forbidden = qualified in FORBIDDEN_NAMES or qualified in FORBIDDEN_MODULES
                if forbidden or not _module_allowed(target):
                    flag(node, f"imports {qualified}")
                aliases[alias.asname or alias.name] = qualified

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node, aliases)
            if dotted in FORBIDDEN_NAMES:
                flag(node, f"uses {dotted}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in FORBIDDEN_BUILTINS and name not in aliases:
                flag(node, f"calls {name}()")
            elif aliases.get(name) in FORBIDDEN_NAMES:
                flag(node, f"calls {aliases[name]}()")
    return sorted(found, key=lambda v: v.line)


def _dotted(node: ast.Attribute, aliases: dict[str, str]) -> str | None:
    parts = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name):
        return None
    parts.append(aliases.get(value.id, value.id))
    return ".".join(reversed(parts))


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_walk_covers_the_core() -> None:
    names = {p.name for p in _core_modules()}
    assert {"__init__.py", "origin.py", "policy.py", "variants.py", "plan.py"} <= names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_pure(path: Path) -> None:
    relative = path.relative_to(ROOT)
    package = ".".join(relative.parent.parts)  # what relative imports resolve against
    violations = find_violations(path.read_text(encoding="utf-8"), str(relative), package)
    assert not violations, "scanner/core must stay pure:\n" + "\n".join(map(str, violations))


# -- the checker itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        ("import aiohttp", 1, "imports aiohttp"),
        ("\nimport sqlalchemy.ext.asyncio as sa", 2, "imports sqlalchemy.ext.asyncio"),
        ("from scanner.prober import execute", 1, "imports scanner.prober.execute"),
        ("from scanner import db", 1, "imports scanner.db"),
        ("import scanner.settings", 1, "imports scanner.settings"),
        ("from .. import engine", 1, "imports scanner.engine"),
        ("import random", 1, "imports random"),
        ("from secrets import token_hex", 1, "imports secrets.token_hex"),
        ("import urllib.request", 1, "imports urllib.request"),
        ("import socket", 1, "imports socket"),
        ("from time import time", 1, "imports time.time"),
        ("from os import environ", 1, "imports os.environ"),
        ("import datetime\nx = datetime.datetime.now()", 2, "uses datetime.datetime.now"),
        (
            "from datetime import datetime\nx = datetime.utcnow()",
            2,
            "uses datetime.datetime.utcnow",
        ),
        ("import datetime as dt\n\nx = dt.date.today()", 3, "uses datetime.date.today"),
        ("import time\nx = time.time()", 2, "uses time.time"),
        ("import time as t\nx = t.monotonic()", 2, "uses time.monotonic"),
        ("import os\nx = os.environ['HOME']", 2, "uses os.environ"),
        ("import os\nx = os.getenv('HOME')", 2, "uses os.getenv"),
        ("def f():\n    return open('x').read()", 2, "calls open()"),
        ("print('hi')", 1, "calls print()"),
    ],
)
def test_checker_names_file_and_line_of_impure_code(source: str, line: int, what: str) -> None:
    violations = find_violations(source, "scanner/core/example.py")
    assert [str(v) for v in violations if v.line == line] == [
        f"scanner/core/example.py:{line}: {what}"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import re\nimport ipaddress\nfrom urllib.parse import urlsplit",
        "from dataclasses import dataclass, field\nfrom enum import StrEnum",
        "from scanner.errors import InvalidOrigin",
        "from scanner import errors",
        "from scanner.core.origin import Origin",
        "from .origin import Origin\nfrom . import policy",
        "from datetime import datetime, timedelta\n\ndef age(now: datetime) -> timedelta:\n"
        "    return now - datetime(2020, 1, 1)",
        "import hashlib\nx = hashlib.sha256(b'').hexdigest()",
        "def f(when):\n    return when.now",  # an attribute of a parameter, not the clock
    ],
)
def test_checker_accepts_pure_code(source: str) -> None:
    assert find_violations(source, "scanner/core/example.py") == []
