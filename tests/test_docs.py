"""The user documentation names every rule, with its title and usual severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.core.catalogue import CATALOGUE

RULES_DOC = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text()


@pytest.mark.parametrize("rule_id", sorted(CATALOGUE))
def test_every_rule_is_documented(rule_id: str) -> None:
    rule = CATALOGUE[rule_id]
    row = f"| `{rule.id}` | {rule.category.value} | {rule.severity.value} | {rule.title} |"
    assert row in RULES_DOC
    assert f"## `{rule.id}`" in RULES_DOC
