"""The versioned JSON document of a scan (`scan --format json`), documented in docs/scan-json.md.

Stable contract: fields are only ever added within a version; renaming or
removing one bumps ``version``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TextIO

import scanner
from scanner.core.checks import Assessment
from scanner.core.documents import (
    JSON,
    finding_to_json,
    policy_to_json,
    probe_to_json,
)
from scanner.core.severity import Severity

FORMAT = "cors-scanner.scan"
VERSION = 1


def assessment_to_json(a: Assessment, *, probes: bool = True) -> JSON:
    doc: JSON = {
        "method": a.endpoint.method.upper(),
        "url": a.endpoint.url,
        "name": a.endpoint.name,
        "policy": policy_to_json(a.policy),
        "reachable": a.reachable,
        "probe_count": a.probe_count,
        "probe_errors": len(a.errors),
        "findings": [finding_to_json(f) for f in a.findings],
        "unchecked": list(a.unchecked),
        "not_sent": a.not_sent,
    }
    if probes:
        doc["probes"] = [probe_to_json(p) for p in a.probes]
    return doc


def summary(assessments: Sequence[Assessment], fail_on: Severity | None) -> JSON:
    severities: Counter[str] = Counter(f.severity.value for a in assessments for f in a.findings)
    failing = fail_on is not None and any(
        f.severity >= fail_on for a in assessments for f in a.findings
    )
    return {
        "endpoints": len(assessments),
        "reachable": sum(1 for a in assessments if a.reachable),
        "unreachable": sum(1 for a in assessments if not a.reachable),
        "probes": sum(a.probe_count for a in assessments),
        "probe_errors": sum(len(a.errors) for a in assessments),
        "findings": {s.value: severities.get(s.value, 0) for s in sorted(Severity, reverse=True)},
        "fail_on": fail_on.value if fail_on else None,
        "failed": failing,
    }


def scan_document(
    assessments: Iterable[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> JSON:
    items = list(assessments)
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": {"name": "cors-scanner", "version": scanner.__version__},
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "summary": summary(items, fail_on),
        "endpoints": [assessment_to_json(a) for a in items],
    }


class ScanDocumentWriter:
    """Writes the scan document incrementally: each endpoint as soon as it is judged.

    Memory stays flat however many endpoints a scan has. The document is the
    same as :func:`scan_document`'s except for key order (``endpoints`` before
    ``finished_at`` and ``summary``) and endpoints in the order they finished.
    """

    def __init__(self, stream: TextIO, *, started_at: datetime) -> None:
        self._stream = stream
        self._first = True
        head = {
            "format": FORMAT,
            "version": VERSION,
            "tool": {"name": "cors-scanner", "version": scanner.__version__},
            "started_at": started_at.isoformat(),
        }
        stream.write(json.dumps(head, indent=2)[:-2] + ',\n  "endpoints": [')

    def add(self, assessment: Assessment) -> None:
        body = json.dumps(assessment_to_json(assessment), indent=2)
        self._stream.write(("\n" if self._first else ",\n") + _indent(body, 4))
        self._first = False

    def finish(
        self, assessments: Sequence[Assessment], *, finished_at: datetime, fail_on: Severity | None
    ) -> None:
        tail = {"finished_at": finished_at.isoformat(), "summary": summary(assessments, fail_on)}
        body = json.dumps(tail, indent=2)[1:]  # drop the opening brace
        self._stream.write(("\n  ]," if not self._first else "],") + body + "\n")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())
