"""docs/operations.md documents every setting with its real default, and nothing that is not one.

The comparison is made against ``dataclasses.fields(Settings)`` when the test
runs, in both directions: a new setting without documentation fails, and so
does documentation of a setting that was renamed or removed.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

from scanner.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "operations.md"
ROW = re.compile(r"^\| `(CORS_SCANNER_[A-Z0-9_]+)` \| ([^|]+) \|(.+)\|\s*$")


def reference_rows() -> dict[str, tuple[str, str]]:
    """{variable: (default cell, meaning)} from the configuration reference section."""
    text = DOCS.read_text()
    start = text.index("## Configuration reference")
    end = text.index("\n## ", start + 1)
    rows: dict[str, tuple[str, str]] = {}
    for line in text[start:end].splitlines():
        match = ROW.match(line)
        if match:
            name, default, meaning = match.groups()
            assert name not in rows, f"{name} is documented twice"
            rows[name] = (default.strip().strip("`"), meaning.strip())
    return rows


def shown(value: object) -> str:
    """A default as the docs write it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ((), ""):
        return "empty"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    documented = reference_rows()
    settings = {PREFIX + f.name.upper() for f in fields(Settings)}

    assert sorted(settings - set(documented)) == [], "settings missing from docs/operations.md"
    assert sorted(set(documented) - settings) == [], "documented settings that do not exist"


def test_documented_defaults_are_the_real_ones() -> None:
    documented = reference_rows()
    wrong = {}
    for f in fields(Settings):
        name = PREFIX + f.name.upper()
        if name not in documented:
            continue  # reported by the test above
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        if documented[name][0] != shown(default):
            wrong[name] = (documented[name][0], shown(default))
        assert len(documented[name][1]) > 10, f"{name}: say what it does"
    assert wrong == {}, "documented default != code default"


def test_every_variable_mentioned_anywhere_in_the_docs_exists() -> None:
    settings = {PREFIX + f.name.upper() for f in fields(Settings)}
    mentioned = set(re.findall(r"\bCORS_SCANNER_[A-Z0-9_]+\b", DOCS.read_text()))
    # Short forms like `PER_HOST` in prose are fine; full names must be real.
    assert sorted(mentioned - settings) == []


def test_the_operations_guide_covers_what_operators_need() -> None:
    text = DOCS.read_text()
    for heading in (
        "## Configuration reference",
        "## Logs",
        "## Health checks",
        "## Sizing",
        "## Backup and restore",
        "## Upgrades with migrations",
        "## Scaling workers",
    ):
        assert heading in text
    assert "cors-scanner db upgrade" in text
    assert "/readyz" in text
    assert "X-Request-Id" in text
