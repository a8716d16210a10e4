"""Live findings per day, from each finding's dates: the Overview's trend (pure).

A finding counts on day D (UTC) when, at the end of D, it had been seen
(``first_seen <= end``), was not resolved (its ``resolved_at`` is None or
later), and no triage decision silenced it (``silenced_from`` is None or
later, or the decision had expired by then). Resolutions are those the store
still holds: a finding that resolved and came back counts from its first
sighting, as DefectDojo's "open findings by day" does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True, slots=True)
class FindingSpan:
    """When one finding appeared, resolved, and was silenced (timezone-aware datetimes)."""

    first_seen: datetime
    resolved_at: datetime | None = None
    silenced_from: datetime | None = None
    silenced_until: datetime | None = None

    def live_at(self, moment: datetime) -> bool:
        """Present and not silenced at ``moment``."""
        if self.first_seen > moment:
            return False
        if self.resolved_at is not None and self.resolved_at <= moment:
            return False
        silenced = self.silenced_from is not None and self.silenced_from <= moment
        return not (silenced and (self.silenced_until is None or moment < self.silenced_until))


@dataclass(frozen=True, slots=True)
class DayCount:
    """How many findings were live at the end of ``day``."""

    day: date
    live: int


def day_end(day: date) -> datetime:
    """The last moment of a UTC day (the next midnight, exclusive, minus a microsecond)."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(
        microseconds=1
    )


def live_per_day(spans: Iterable[FindingSpan], *, last_day: date, days: int) -> list[DayCount]:
    """``days`` counts, oldest first, ending with ``last_day`` (today: its count is as of now)."""
    if days <= 0:
        raise ValueError("days must be above 0")
    wanted = [last_day - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    ends = [day_end(d) for d in wanted]
    counts = [0] * days
    for span in spans:
        for i, end in enumerate(ends):
            if span.live_at(end):
                counts[i] += 1
    return [DayCount(d, n) for d, n in zip(wanted, counts, strict=True)]
