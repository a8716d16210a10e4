"""CSV output: one row per finding that the csv module reads back, formula injection neutralised."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest
from sample_scans import FINISHED, STARTED

from scanner.core.checks import Assessment
from scanner.core.severity import Severity
from scanner.reports.csv import COLUMNS, neutralise, render_csv


def rows(assessments: list[Assessment]) -> list[dict[str, str]]:
    text = render_csv(assessments, started_at=STARTED, finished_at=FINISHED, fail_on=Severity.HIGH)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def test_one_row_per_finding_with_its_identity(scan: list[Assessment]) -> None:
    table = rows(scan)
    findings = [f for a in scan for f in a.findings]
    assert len(table) == len(findings) == 2
    reflect = table[0]
    finding = scan[0].findings[0]
    assert reflect == {
        "method": "GET",
        "url": "https://api.acme.com/v1/me",
        "rule_id": "reflect_any_origin_credentials",
        "severity": "critical",
        "category": "exposure",
        "title": finding.title,
        "summary": finding.summary,
        "origin_class": "arbitrary_origin",
        "credentialed": "true",
        "fingerprint": finding.fingerprint,
        "origin": finding.evidence[0].origin,
        "status": "200",
    }
    assert (table[1]["rule_id"], table[1]["severity"], table[1]["credentialed"]) == (
        "wildcard_public",
        "info",
        "false",
    )


def test_a_scan_without_findings_is_just_the_header(scan: list[Assessment]) -> None:
    text = render_csv(scan[2:], started_at=STARTED, finished_at=FINISHED, fail_on=Severity.HIGH)
    assert text == ",".join(COLUMNS) + "\r\n"


def test_hostile_text_reads_back_without_control_characters(
    hostile_assessment: Assessment,
) -> None:
    table = rows([hostile_assessment])
    invalid = next(r for r in table if r["rule_id"] == "invalid_acao")
    assert "<script>alert(1)</script>" in invalid["summary"]
    for row in table:
        for value in row.values():
            assert not any(ord(c) < 0x20 and c not in "\t\n\r" for c in value), value


@pytest.mark.parametrize(
    "payload", ['=HYPERLINK("http://evil")', "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_formula_cells_are_neutralised(scan: list[Assessment], payload: str) -> None:
    # No rule puts server text first in a cell today; a summary quoting it would.
    finding = scan[0].findings[0]
    poisoned = dataclasses.replace(
        scan[0], findings=(dataclasses.replace(finding, summary=payload),)
    )
    [row] = rows([poisoned])
    assert row["summary"] == "'" + payload
    assert neutralise(payload) == "'" + payload


def test_ordinary_cells_are_left_alone() -> None:
    for value in ("https://api.acme.com/v1/me", "critical", "fp1:abc", "a=b", "200", ""):
        assert neutralise(value) == value
    assert neutralise("a\x00b") == "a\\x00b"
