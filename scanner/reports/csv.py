"""Findings as CSV (`scan --format csv`): one row per finding, for spreadsheets and ticket imports.

RFC 4180 text (comma-separated, CRLF line ends, fields quoted when needed)
with a header row. Cells can carry text from hostile servers and user input,
so any cell a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, TAB or CR) is prefixed with ``'`` (OWASP's CSV-injection advice),
and control characters are written as ``\\xNN`` escapes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime

from scanner.core.checks import Assessment
from scanner.core.findings import Finding
from scanner.core.severity import Severity

COLUMNS: tuple[str, ...] = (
    "method",
    "url",
    "rule_id",
    "severity",
    "category",
    "title",
    "summary",
    "origin_class",
    "credentialed",
    "fingerprint",
    "origin",
    "status",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# C0 controls other than TAB, LF and CR (and DEL): a NUL truncates the cell in
# C-based importers, others garble terminals. Written as visible escapes instead.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def neutralise(cell: str) -> str:
    """``cell`` made safe for a spreadsheet.

    Control characters become ``\\xNN`` escapes, and a cell a spreadsheet
    would run as a formula gets a leading ``'``.
    """
    cell = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", cell)
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def render_csv(
    assessments: Sequence[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> str:
    """Every finding of the scan, worst first per endpoint, as CSV text.

    ``origin`` and ``status`` are those of the first proving exchange
    (``status`` is empty when it got no response). The times and ``fail_on``
    are accepted for a uniform renderer signature; a row set has no place
    for them (the other formats carry them).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for assessment in assessments:
        for finding in assessment.findings:
            writer.writerow([neutralise(cell) for cell in _row(finding)])
    return buffer.getvalue()


def _row(finding: Finding) -> list[str]:
    first = finding.evidence[0] if finding.evidence else None
    return [
        finding.endpoint_method,
        finding.endpoint_url,
        finding.rule_id,
        finding.severity.value,
        finding.category.value,
        finding.title,
        finding.summary,
        finding.origin_class,
        "true" if finding.credentialed else "false",
        finding.fingerprint,
        first.origin if first else "",
        str(first.status) if first and first.status is not None else "",
    ]
