"""The one way cors-scanner writes an instant: ISO 8601 in UTC with a ``Z``.

``2026-01-31T02:00:00Z``, or ``2026-01-31T02:00:00.123456Z`` when the instant
has microseconds. Every JSON shape (API, CLI, audit details) writes times
this way; alert payloads ask for milliseconds (``timespec="milliseconds"``),
the precision the Standard Webhooks and PagerDuty conventions use.

:func:`parse_iso` reads such a time back (any offset). A naive datetime is
refused rather than guessed at: every time the service
handles is timezone-aware, so a naive one is a bug to surface, not a local
time to assume.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, overload

from scanner.errors import InputError

Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


@overload
def iso_utc(moment: datetime, *, timespec: Timespec = "auto") -> str: ...


@overload
def iso_utc(moment: None, *, timespec: Timespec = "auto") -> None: ...


def iso_utc(moment: datetime | None, *, timespec: Timespec = "auto") -> str | None:
    """``moment`` in UTC as ISO 8601 with a ``Z`` (None stays None). ValueError when naive."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: cors-scanner only handles aware times")
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 timestamp with a time zone (``Z`` or an offset), in UTC; ``InputError``
    naming what is wrong otherwise (no zone: it would be a guess)."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError("must be an ISO 8601 timestamp, e.g. 2026-03-01T00:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError("must carry a time zone (Z or +hh:mm)")
    return value.astimezone(UTC)


__all__ = ["Timespec", "iso_utc", "parse_iso"]
