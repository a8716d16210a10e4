"""The human report of a scan: one block per endpoint, worst findings first.

``paint`` colours a severity label (the command line passes one that colours
only on a terminal, ``scanner.cli.output.severity_painter``); the default
leaves text as it is, so a file or a pipe gets plain text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from scanner.core.checks import Assessment
from scanner.core.findings import Evidence
from scanner.core.severity import Severity

_LABEL = {
    Severity.CRITICAL: "CRITICAL",
    Severity.HIGH: "HIGH    ",
    Severity.MEDIUM: "MEDIUM  ",
    Severity.LOW: "LOW     ",
    Severity.INFO: "INFO    ",
}


Painter = Callable[[str, Severity], str]


def plain(text: str, severity: Severity) -> str:
    """No colour."""
    return text


def _printable(text: str) -> str:
    """Hostile header values must not drive the terminal: escape control characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _evidence_line(e: Evidence) -> str:
    cors = [
        f"{n}: {v}"
        for n, v in e.response_headers
        if n.lower().startswith("access-control-") or n.lower() == "vary"
    ]
    status = e.status if e.status is not None else e.error
    shown = "; ".join(cors[:4]) or "no CORS headers"
    return _printable(f"Origin: {e.origin} -> {e.method} {status} [{shown}] {e.verdict}")


def render_assessment(a: Assessment, paint: Painter = plain) -> str:
    lines = [f"{a.endpoint.method.upper()} {_printable(a.endpoint.url)}"]
    if not a.reachable:
        first = a.errors[0] if a.errors else None
        detail = f"{first.error}: {first.error_detail}" if first and first.error else "no response"
        lines.append(f"  UNREACHABLE  every probe failed ({_printable(detail)})")
    elif not a.findings:
        lines.append(f"  ok           no findings ({a.probe_count} probes)")
    for f in a.findings:
        lines.append(f"  {paint(_LABEL[f.severity], f.severity)} {f.rule_id}: {f.title}")
        lines.append(f"           {_printable(f.summary)}")
        for e in f.evidence[:2]:
            lines.append(f"           {_evidence_line(e)}")
    if a.not_sent:
        lines.append(f"  skipped      {_printable(a.not_sent)}")
    errors = [o for o in a.errors] if a.reachable else []
    if errors:
        kinds = Counter(o.error.value for o in errors if o.error)
        lines.append(
            "  note         "
            + ", ".join(f"{n} probes failed: {k}" for k, n in sorted(kinds.items()))
        )
    return "\n".join(lines) + "\n\n"


def render_summary(
    assessments: Sequence[Assessment], fail_on: Severity, seconds: float, paint: Painter = plain
) -> str:
    counts = Counter(f.severity for a in assessments for f in a.findings)
    unreachable = sum(1 for a in assessments if not a.reachable)
    probes = sum(a.probe_count for a in assessments)
    by_severity = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in sorted(Severity, reverse=True))
    failing = sum(n for s, n in counts.items() if s >= fail_on)
    if assessments and unreachable == len(assessments):
        verdict = "INCOMPLETE: no endpoint could be probed"
    elif failing:
        worst = max(s for s in counts if s >= fail_on)
        verdict = paint(f"FAIL: {failing} finding(s) at or above {fail_on.value}", worst)
    else:
        verdict = f"PASS: nothing at or above {fail_on.value}"
        if unreachable:
            verdict += f" ({unreachable} endpoint(s) could not be probed)"
    return (
        f"{len(assessments)} endpoints ({unreachable} unreachable), {probes} probes in "
        f"{seconds:.1f} s; findings: {by_severity}\n{verdict}\n"
    )
