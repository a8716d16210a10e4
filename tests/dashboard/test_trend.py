"""The Overview's trend: live findings per day (pure core) and its SVG geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from scanner.core.trend import FindingSpan, live_per_day
from scanner.dashboard.charts import trend_chart

DAY = date(2026, 12, 2)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


def test_a_finding_counts_from_its_first_sighting_until_it_resolves() -> None:
    spans = [FindingSpan(first_seen=at(1), resolved_at=at(2, 6))]
    counts = live_per_day(spans, last_day=DAY, days=3)
    assert [(c.day.day, c.live) for c in counts] == [(30, 0), (1, 1), (2, 0)]


def test_a_silenced_finding_does_not_count_while_its_triage_holds() -> None:
    suppressed = FindingSpan(first_seen=at(1, 1), silenced_from=at(1, 2))
    accepted_until = FindingSpan(
        first_seen=at(1, 1), silenced_from=at(1, 2), silenced_until=at(2, 3)
    )
    counts = live_per_day([suppressed, accepted_until], last_day=DAY, days=2)
    assert [c.live for c in counts] == [0, 1]  # the accepted risk expired on day 2


def test_days_without_findings_are_zero_and_every_day_is_there() -> None:
    counts = live_per_day([], last_day=DAY, days=90)
    assert len(counts) == 90
    assert counts[0].day == DAY - timedelta(days=89)
    assert {c.live for c in counts} == {0}
    with pytest.raises(ValueError, match="days"):
        live_per_day([], last_day=DAY, days=0)


def test_the_chart_scales_to_round_ticks_and_spans_the_plot() -> None:
    series = [(DAY - timedelta(days=29 - i), v) for i, v in enumerate([0] * 20 + [7] * 9 + [23])]
    chart = trend_chart(series)
    assert [t.label for t in chart.y_ticks] == ["0", "10", "20", "30"]
    assert chart.points[0].x == chart.plot_left
    assert chart.points[-1].x == chart.plot_right
    assert chart.points[0].y == chart.plot_bottom  # 0 sits on the axis
    assert chart.peak == 23
    assert chart.latest == 23
    assert chart.first == 0
    assert chart.line.startswith("M")
    assert chart.area.endswith("Z")
    assert 1 < len(chart.x_ticks) <= 7
    assert chart.x_ticks[-1].label == "2 Dec"


def test_a_flat_empty_trend_still_draws() -> None:
    chart = trend_chart([(DAY, 0)])
    assert [t.label for t in chart.y_ticks] == ["0", "1"]
    assert chart.points[0].y == chart.plot_bottom
