"""How the pages write values: times, durations, counts, severities (Jinja2 filters).

Pages get the API's documents, whose timestamps are ISO 8601 strings in UTC;
these filters are the one place that turns them into what people read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scanner.core.severity import Severity

SEVERITIES = tuple(s.value for s in sorted(Severity, reverse=True))

STATUS_LABELS = {
    "new": "New",
    "open": "Open",
    "reopened": "Reopened",
    "resolved": "Resolved",
    "suppressed": "Suppressed",
}

EVENT_LABELS = {
    "finding.new": "New finding",
    "finding.reopened": "Reopened",
    "finding.resolved": "Resolved",
    "finding.severity_raised": "Severity raised",
    "finding.severity_lowered": "Severity lowered",
    "finding.triage_expired": "Triage expired",
    "finding.not_verified": "Could not re-verify",
    "finding.rule_change": "Rule change",
    "finding.suppressed": "Suppressed",
    "finding.unsuppressed": "Unsuppressed",
    "regression.legit_origin_blocked": "Legitimate origin blocked",
    "regression.header_drift": "CORS headers changed",
    "endpoint.unreachable": "Unreachable",
    "endpoint.reachable": "Reachable again",
}


def parse_iso(value: str | None) -> datetime | None:
    """A datetime from the API's ISO 8601 text (``Z`` suffix included)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def when(value: str | None) -> str:
    """``2026-12-02 15:40 UTC``, or an em dash for nothing."""
    moment = parse_iso(value)
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: str | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``2 h ago``, ``5 days ago`` (``in 4 days`` for the future)."""
    moment = parse_iso(value)
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = "just now" if not future else "in under a minute"
        return text
    for size, unit in ((86_400, "day"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            count = int(seconds // size)
            label = f"{count} {unit}" + ("s" if unit == "day" and count != 1 else "")
            return f"in {label}" if future else f"{label} ago"
    return "just now"  # pragma: no cover


def duration(start: str | None, end: str | None) -> str:
    """``1 min 12 s`` between two timestamps (to now when ``end`` is None)."""
    begun = parse_iso(start)
    if begun is None:
        return "—"
    finished = parse_iso(end) or datetime.now(UTC)
    seconds = max(0.0, (finished - begun).total_seconds())
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def number(value: Any) -> str:
    """A count with thousands separators."""
    return f"{int(value):,}" if isinstance(value, int | float) else "—"


def status_label(value: str) -> str:
    return STATUS_LABELS.get(value, value.capitalize())


def event_label(value: str) -> str:
    return EVENT_LABELS.get(value, value)


def percent(done: int, total: int) -> int:
    """Whole percent, 0-100 (a run with nothing to do is complete)."""
    if total <= 0:
        return 100
    return max(0, min(100, round(100 * done / total)))


FILTERS = {
    "when": when,
    "ago": ago,
    "number": number,
    "status_label": status_label,
    "event_label": event_label,
}
GLOBALS = {"SEVERITIES": SEVERITIES, "duration": duration, "percent": percent}
