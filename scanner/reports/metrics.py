"""Prometheus metrics: fleet-wide figures computed from the database at scrape time.

Any API process can answer ``GET /metrics`` for the whole fleet, because
runs, probes, findings, work items, workers and deliveries all live in the
database (``shared/docs/service-design.md`` §4.3). Nothing here is held in
process memory, so scraping one API process is enough, and a restart loses
nothing.

The text exposition format 0.0.4 is written here (no ``prometheus_client``):
``# HELP`` and ``# TYPE`` once per family, then its samples; label values
escape ``\\``, ``"`` and newlines; histograms give cumulative ``_bucket``
series ending in ``le="+Inf"`` (equal to ``_count``), then ``_sum`` and
``_count``. Names carry the ``cors_scanner_`` prefix and base units; labels
are low-cardinality enums (trigger, outcome, severity, status, rule id,
channel, probe kind, schedule name), never URLs, origins or ids.

Two histograms are windows, not running totals, and say so in HELP: probe
latency (probes of runs created in the last 24 h; probe rows of old runs are
pruned, so an all-time total could go down) and webhook attempt latency
(attempts of the last 24 h). Read them with ``histogram_quantile`` directly,
not through ``rate()``. Run durations cover every finished run (runs are
never deleted), so that one is cumulative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, and_, case, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

import scanner
from scanner.core.lifecycle import FindingStatus
from scanner.core.plan import ProbeKind
from scanner.core.severity import Severity
from scanner.db.hooks import DeliveryStatus, HookKind
from scanner.db.leases import WorkStatus, database_time
from scanner.db.runs import RunStatus, RunTrigger
from scanner.db.tables import (
    DeliveryAttemptRow,
    FindingEventRow,
    HookDeliveryRow,
    HookRow,
    RunProbeRow,
    RunRow,
    ScheduleRow,
    TrackedFindingRow,
    WorkerRow,
    WorkItemRow,
)

PREFIX = "cors_scanner_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECENT = timedelta(hours=24)  # the window of the latency histograms

# Seconds. Runs take from seconds (a few endpoints) to hours (a large fleet).
RUN_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
# Seconds. One HTTP exchange: loopback answers in milliseconds, timeouts at 10 s by default.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_FINAL_RUNS = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
_ACTIVE_RUNS = (RunStatus.QUEUED, RunStatus.RUNNING)
_WORK_STATES = (WorkStatus.QUEUED, WorkStatus.LEASED, WorkStatus.DEAD)
_FINAL_DELIVERIES = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)
_PENDING_DELIVERIES = (DeliveryStatus.QUEUED, DeliveryStatus.LEASED)
# Delivery attempt outcomes as the dispatcher records them (scanner.alerts.retry.Outcome).
_ATTEMPT_OUTCOMES = ("success", "retry", "fail", "disable")


class MetricType(StrEnum):
    """The ``# TYPE`` of a family (the ones format 0.0.4 knows and we use)."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line: ``<family name><suffix>{labels} value``."""

    labels: Labels
    value: float
    suffix: str = ""  # "_bucket", "_sum", "_count" for histograms


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric family: its name (prefix included), type, help text and samples."""

    name: str
    type: MetricType
    help: str
    samples: tuple[Sample, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name) or not self.name.startswith(PREFIX):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.type is MetricType.COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        for sample in self.samples:
            for label, _ in sample.labels:
                if not _LABEL_NAME.match(label) or label.startswith("__"):
                    raise ValueError(f"invalid label name {label!r} in {self.name}")


@dataclass(frozen=True, slots=True)
class HistogramData:
    """One histogram series: cumulative counts per upper bound (seconds), sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]  # observations <= each bound, same length as bounds
    total: float
    count: int

    def samples(self, labels: Labels = ()) -> list[Sample]:
        """The ``_bucket`` (ending with ``+Inf`` = count), ``_sum`` and ``_count`` samples."""
        out = [
            Sample((*labels, ("le", format_value(bound))), float(n), "_bucket")
            for bound, n in zip(self.bounds, self.cumulative, strict=True)
        ]
        out.append(Sample((*labels, ("le", "+Inf")), float(self.count), "_bucket"))
        out.append(Sample(labels, self.total, "_sum"))
        out.append(Sample(labels, float(self.count), "_count"))
        return out


# -- the text format -------------------------------------------------------------


def escape_label_value(value: str) -> str:
    """A label value as format 0.0.4 quotes it: ``\\`` , ``"`` and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: ``\\`` and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value or bound: integers without a fraction, ``+Inf``/``-Inf``/``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render_exposition(families: Iterable[MetricFamily]) -> str:
    """The families as one text exposition (newline-terminated); names must be unique."""
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name!r} given twice")
        seen.add(family.name)
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type.value}")
        for sample in family.samples:
            labels = ""
            if sample.labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels)
                labels = "{" + inner + "}"
            lines.append(f"{family.name}{sample.suffix}{labels} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"


# -- from the database ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """What the collection needs from the settings: when a worker counts as alive (seconds)."""

    worker_stale_after: float


async def collect(session: AsyncSession, settings: MetricsSettings) -> list[MetricFamily]:
    """Every metric family, from the database as it is now (database clock)."""
    now = await database_time(session)
    families = [
        MetricFamily(
            PREFIX + "build_info",
            MetricType.GAUGE,
            "The running cors-scanner version (always 1).",
            (Sample((("version", scanner.__version__),), 1.0),),
        ),
        *await _runs(session),
        await _last_completed(session),
        *await _probes(session, now),
        await _findings(session),
        await _regressions(session),
        await _work_items(session),
        await _workers(session, now, settings.worker_stale_after),
        *await _deliveries(session, now),
    ]
    return families


async def render_metrics(session: AsyncSession, settings: MetricsSettings) -> str:
    """The exposition text of :func:`collect`."""
    return render_exposition(await collect(session, settings))


_Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def _seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    # Timestamp arithmetic differs by backend; SQLite stores ISO text that
    # julianday() reads (microseconds included).
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("epoch", end - start), Float)
    # julianday() is a double in days: ~20 µs of noise, rounded off at the millisecond.
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


async def _histogram(
    session: AsyncSession,
    value: _Column,
    bounds: Sequence[float],
    where: Sequence[ColumnElement[bool]],
    group: _Column | None = None,
    *,
    scale: float = 1.0,
) -> dict[Any, HistogramData]:
    """Buckets counted in SQL (no rows leave the database); ``scale`` converts to the bounds' unit."""
    columns: list[Any] = [func.sum(case((value <= bound * scale, 1), else_=0)) for bound in bounds]
    columns += [func.sum(cast(value, Float)), func.count()]
    query = select(*([group] if group is not None else []), *columns).where(and_(*where))
    if group is not None:
        query = query.group_by(group)
    out: dict[Any, HistogramData] = {}
    for row in (await session.execute(query)).all():
        key = row[0] if group is not None else None
        values = row[1:] if group is not None else row
        count = int(values[-1] or 0)
        out[key] = HistogramData(
            bounds=tuple(bounds),
            cumulative=tuple(int(v or 0) for v in values[: len(bounds)]),
            total=float(values[-2] or 0.0) / scale,
            count=count,
        )
    return out


def _empty(bounds: Sequence[float]) -> HistogramData:
    return HistogramData(tuple(bounds), tuple(0 for _ in bounds), 0.0, 0)


async def _runs(session: AsyncSession) -> list[MetricFamily]:
    counts: dict[tuple[str, str], int] = {}
    rows = await session.execute(
        select(RunRow.trigger, RunRow.status, func.count()).group_by(RunRow.trigger, RunRow.status)
    )
    for trigger, status, count in rows.all():
        counts[(trigger, status)] = int(count)
    triggers = [t.value for t in RunTrigger]
    finished = tuple(
        Sample((("trigger", t), ("outcome", s.value)), float(counts.get((t, s.value), 0)))
        for t in triggers
        for s in _FINAL_RUNS
    )
    active = tuple(
        Sample((("status", s.value),), float(sum(counts.get((t, s.value), 0) for t in triggers)))
        for s in _ACTIVE_RUNS
    )
    duration = _seconds_between(session, RunRow.started_at, RunRow.finished_at)
    by_trigger = await _histogram(
        session,
        duration,
        RUN_BUCKETS,
        [RunRow.started_at.is_not(None), RunRow.finished_at.is_not(None)],
        RunRow.trigger,
    )
    histogram: list[Sample] = []
    for t in triggers:
        histogram.extend(by_trigger.get(t, _empty(RUN_BUCKETS)).samples((("trigger", t),)))
    return [
        MetricFamily(
            PREFIX + "runs_total",
            MetricType.COUNTER,
            "Finished runs (scans) by trigger and outcome (completed, failed, cancelled).",
            finished,
        ),
        MetricFamily(
            PREFIX + "runs_active",
            MetricType.GAUGE,
            "Runs not finished yet, by status (queued, running).",
            active,
        ),
        MetricFamily(
            PREFIX + "run_duration_seconds",
            MetricType.HISTOGRAM,
            "Duration of every finished run that started, from start to finish, by trigger.",
            tuple(histogram),
        ),
    ]


async def _last_completed(session: AsyncSession) -> MetricFamily:
    rows = await session.execute(
        select(ScheduleRow.name, func.max(RunRow.finished_at))
        .join(RunRow, RunRow.schedule_id == ScheduleRow.id)
        .where(RunRow.status == RunStatus.COMPLETED.value)
        .group_by(ScheduleRow.name)
        .order_by(ScheduleRow.name)
    )
    samples = tuple(
        Sample((("schedule", name),), _epoch(finished))
        for name, finished in rows.all()
        if finished is not None
    )
    return MetricFamily(
        PREFIX + "last_run_completed_timestamp_seconds",
        MetricType.GAUGE,
        "When the latest completed run of each schedule finished (Unix seconds); "
        "schedules that never completed a run are absent.",
        samples,
    )


def _epoch(value: datetime | str) -> float:
    # func.max() over a timestamp comes back untyped on SQLite: the stored text (UTC).
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        value = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return value.timestamp()


async def _probes(session: AsyncSession, now: datetime) -> list[MetricFamily]:
    totals = (
        await session.execute(select(func.sum(RunRow.probes_total), func.sum(RunRow.probe_errors)))
    ).one()
    sent, errors = int(totals[0] or 0), int(totals[1] or 0)
    recent = await _histogram(
        session,
        RunProbeRow.elapsed_ms,
        LATENCY_BUCKETS,
        [RunProbeRow.scan_id == RunRow.id, RunRow.created_at >= now - RECENT],
        RunProbeRow.kind,
        scale=1000.0,
    )
    histogram: list[Sample] = []
    for kind in ProbeKind:
        histogram.extend(
            recent.get(kind.value, _empty(LATENCY_BUCKETS)).samples((("kind", kind.value),))
        )
    return [
        MetricFamily(
            PREFIX + "probes_total",
            MetricType.COUNTER,
            "Probes (HTTP exchanges with targets) of every run, by outcome: response, or "
            "error (no usable response: DNS, connect, TLS, timeout, reset...).",
            (
                Sample((("outcome", "response"),), float(sent - errors)),
                Sample((("outcome", "error"),), float(errors)),
            ),
        ),
        MetricFamily(
            PREFIX + "probe_duration_seconds",
            MetricType.HISTOGRAM,
            "Probe latency by probe kind, over the probes of runs created in the last 24 h "
            "(a window, not a running total: use histogram_quantile without rate()).",
            tuple(histogram),
        ),
    ]


async def _findings(session: AsyncSession) -> MetricFamily:
    counts: dict[tuple[str, str], int] = {}
    rows = await session.execute(
        select(TrackedFindingRow.severity, TrackedFindingRow.status, func.count()).group_by(
            TrackedFindingRow.severity, TrackedFindingRow.status
        )
    )
    for severity, status, count in rows.all():
        counts[(severity, status)] = int(count)
    return MetricFamily(
        PREFIX + "findings",
        MetricType.GAUGE,
        "Tracked findings (one per fingerprint across runs) by severity and lifecycle status; "
        "open ones are new, open and reopened.",
        tuple(
            Sample(
                (("severity", sev.value), ("status", st.value)),
                float(counts.get((sev.value, st.value), 0)),
            )
            for sev in sorted(Severity, reverse=True)
            for st in FindingStatus
        ),
    )


async def _regressions(session: AsyncSession) -> MetricFamily:
    rows = await session.execute(
        select(FindingEventRow.rule_id, func.count())
        .where(FindingEventRow.is_regression.is_(True))
        .group_by(FindingEventRow.rule_id)
    )
    samples = sorted((rule or "none", int(count)) for rule, count in rows.all())
    return MetricFamily(
        PREFIX + "regressions_total",
        MetricType.COUNTER,
        "Regressions the run diffs recorded (new or reopened exposure, raised severity...), "
        "by rule id.",
        tuple(Sample((("rule", rule),), float(count)) for rule, count in samples),
    )


async def _work_items(session: AsyncSession) -> MetricFamily:
    rows = await session.execute(
        select(WorkItemRow.status, func.count())
        .where(WorkItemRow.status.in_([s.value for s in _WORK_STATES]))
        .group_by(WorkItemRow.status)
    )
    counts = {status: int(count) for status, count in rows.all()}
    return MetricFamily(
        PREFIX + "work_items",
        MetricType.GAUGE,
        "Work items of runs by state: queued (waiting for a worker), leased (in a worker's "
        "hands), dead (gave up after max attempts).",
        tuple(Sample((("state", s.value),), float(counts.get(s.value, 0))) for s in _WORK_STATES),
    )


async def _workers(session: AsyncSession, now: datetime, stale_after: float) -> MetricFamily:
    live = (
        await session.execute(
            select(func.count()).where(
                WorkerRow.last_heartbeat > now - timedelta(seconds=stale_after)
            )
        )
    ).scalar_one()
    return MetricFamily(
        PREFIX + "workers_alive",
        MetricType.GAUGE,
        f"Worker processes whose heartbeat is under {stale_after:g} s old (database clock).",
        (Sample((), float(live)),),
    )


async def _deliveries(session: AsyncSession, now: datetime) -> list[MetricFamily]:
    counts: dict[tuple[str, str], int] = {}
    rows = await session.execute(
        select(HookRow.kind, HookDeliveryRow.status, func.count())
        .join(HookRow, HookRow.id == HookDeliveryRow.hook_id)
        .group_by(HookRow.kind, HookDeliveryRow.status)
    )
    for kind, status, count in rows.all():
        counts[(kind, status)] = int(count)
    channels = [k.value for k in HookKind]
    attempts: dict[tuple[str, str], int] = {}
    rows = await session.execute(
        select(HookRow.kind, DeliveryAttemptRow.outcome, func.count())
        .join(HookDeliveryRow, HookDeliveryRow.id == DeliveryAttemptRow.delivery_id)
        .join(HookRow, HookRow.id == HookDeliveryRow.hook_id)
        .group_by(HookRow.kind, DeliveryAttemptRow.outcome)
    )
    for kind, outcome, count in rows.all():
        attempts[(kind, outcome)] = int(count)
    outcomes = sorted({*_ATTEMPT_OUTCOMES, *(o for _, o in attempts)})
    latency = await _histogram(
        session,
        DeliveryAttemptRow.duration_ms,
        LATENCY_BUCKETS,
        [
            DeliveryAttemptRow.delivery_id == HookDeliveryRow.id,
            HookDeliveryRow.hook_id == HookRow.id,
            DeliveryAttemptRow.started_at >= now - RECENT,
        ],
        HookRow.kind,
        scale=1000.0,
    )
    histogram: list[Sample] = []
    for channel in channels:
        histogram.extend(
            latency.get(channel, _empty(LATENCY_BUCKETS)).samples((("channel", channel),))
        )
    return [
        MetricFamily(
            PREFIX + "webhook_deliveries_total",
            MetricType.COUNTER,
            "Alert deliveries that reached a final state, by channel (webhook, slack, "
            "pagerduty) and outcome (delivered, dead, cancelled).",
            tuple(
                Sample((("channel", c), ("outcome", s.value)), float(counts.get((c, s.value), 0)))
                for c in channels
                for s in _FINAL_DELIVERIES
            ),
        ),
        MetricFamily(
            PREFIX + "webhook_deliveries_pending",
            MetricType.GAUGE,
            "Alert deliveries not final yet, by channel and state (queued, leased).",
            tuple(
                Sample((("channel", c), ("state", s.value)), float(counts.get((c, s.value), 0)))
                for c in channels
                for s in _PENDING_DELIVERIES
            ),
        ),
        MetricFamily(
            PREFIX + "webhook_delivery_attempts_total",
            MetricType.COUNTER,
            "Delivery attempts by channel and outcome (success, retry, fail, disable).",
            tuple(
                Sample((("channel", c), ("outcome", o)), float(attempts.get((c, o), 0)))
                for c in channels
                for o in outcomes
            ),
        ),
        MetricFamily(
            PREFIX + "webhook_delivery_duration_seconds",
            MetricType.HISTOGRAM,
            "Delivery attempt latency by channel, over attempts started in the last 24 h "
            "(a window, not a running total: use histogram_quantile without rate()).",
            tuple(histogram),
        ),
    ]
