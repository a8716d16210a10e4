"""Prometheus metrics: the fleet's facts as metric families, rendered by ``prometheus_client``.

``prometheus_client`` (the Prometheus project's own Python client) writes the
exposition: text format 0.0.4 by default, OpenMetrics 1.0 when the scraper's
``Accept`` asks for ``application/openmetrics-text`` (Prometheus does), with
the escaping, ``# HELP``/``# TYPE`` (and OpenMetrics' ``# UNIT`` and
``# EOF``) it requires. A per-scrape collector turns
:class:`scanner.db.metrics.FleetFacts` into families; the answering
process's own ``process_*`` and ``python_*`` metrics come along.

Semantics a dashboard can rely on:

- ``*_total`` counters never go down: they count runs and probes (rows never
  deleted), regressions (an append-only log) and alert deliveries and
  attempts (running totals kept in ``metric_counters``, so deleting a hook
  keeps them).
- ``cors_scanner_run_duration_seconds`` is a real histogram: every finished
  run, cumulative, so ``rate()`` and ``histogram_quantile()`` over it work.
- The 24-hour latency windows are **gauges** -- they fall as old probes and
  attempts leave the window -- shaped like histogram buckets (an ``le``
  label), so ``histogram_quantile(0.95, cors_scanner_probes_24h)`` still
  reads a percentile; never put them through ``rate()``.

Names carry the ``cors_scanner_`` prefix and base units; labels are
low-cardinality enums (trigger, outcome, severity, status, rule id, channel,
probe kind, schedule name), never URLs, origins or ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GC_COLLECTOR
from prometheus_client.platform_collector import PLATFORM_COLLECTOR
from prometheus_client.process_collector import PROCESS_COLLECTOR
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

import scanner
from scanner.core.lifecycle import FindingStatus
from scanner.core.plan import ProbeKind
from scanner.core.severity import Severity
from scanner.db.hooks import DeliveryStatus, HookKind
from scanner.db.metrics import (
    ACTIVE_RUNS,
    FINAL_RUNS,
    PENDING_DELIVERIES,
    WORK_STATES,
    Buckets,
    FleetFacts,
)
from scanner.db.runs import RunTrigger

PREFIX = "cors_scanner_"
WINDOW = timedelta(hours=24)  # the latency windows
# Seconds. Runs take from seconds (a few endpoints) to hours (a large fleet).
RUN_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
# Seconds. One HTTP exchange: loopback answers in milliseconds, timeouts at 10 s by default.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FINAL_DELIVERIES = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)
# Delivery attempt outcomes as the dispatcher records them (scanner.alerts.retry.Outcome).
ATTEMPT_OUTCOMES = ("success", "retry", "fail", "disable")

# The answering process's own metrics (CPU, memory, descriptors, GC, Python
# version): prometheus_client's stock collectors, added to each scrape's registry.
_PROCESS_COLLECTORS: tuple[Collector, ...] = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)


def fleet_families(facts: FleetFacts) -> list[Metric]:
    """Every ``cors_scanner_*`` family, with every label combination present (zeros too)."""
    triggers = [t.value for t in RunTrigger]
    channels = [k.value for k in HookKind]
    build = InfoMetricFamily(
        PREFIX + "build",
        "The running cors-scanner version.",
        value={"version": scanner.__version__},
    )

    runs = CounterMetricFamily(
        PREFIX + "runs",
        "Finished runs (scans) by trigger and outcome (completed, failed, cancelled).",
        labels=["trigger", "outcome"],
    )
    for t in triggers:
        for s in FINAL_RUNS:
            runs.add_metric([t, s.value], facts.runs_finished.get((t, s.value), 0))
    active = GaugeMetricFamily(
        PREFIX + "runs_active",
        "Runs not finished yet, by status (queued, running).",
        labels=["status"],
    )
    for s in ACTIVE_RUNS:
        active.add_metric([s.value], facts.runs_active.get(s.value, 0))
    durations = HistogramMetricFamily(
        PREFIX + "run_duration_seconds",
        "Duration of every finished run that started, from start to finish, by trigger "
        "(cumulative: runs are never deleted).",
        labels=["trigger"],
        unit="seconds",
    )
    for t in triggers:
        b = facts.run_durations.get(t) or Buckets.empty(RUN_BUCKETS)
        durations.add_metric([t], _buckets(b), sum_value=b.total)
    last = GaugeMetricFamily(
        PREFIX + "last_run_completed_timestamp_seconds",
        "When the latest completed run of each schedule finished (Unix seconds); "
        "schedules that never completed a run are absent.",
        labels=["schedule"],
        unit="seconds",
    )
    for name in sorted(facts.last_completed):
        last.add_metric([name], facts.last_completed[name].timestamp())

    probes = CounterMetricFamily(
        PREFIX + "probes",
        "Probes (HTTP exchanges with targets) of every run, by outcome: response, or "
        "error (no usable response: DNS, connect, TLS, timeout, reset...).",
        labels=["outcome"],
    )
    probes.add_metric(["response"], facts.probes_sent - facts.probe_errors)
    probes.add_metric(["error"], facts.probe_errors)
    recent_probes, recent_probe_seconds = _window(
        "probes_24h",
        "probe_duration_24h_seconds",
        "Probes of runs created in the last 24 h, by probe kind, whose latency was at most "
        "`le` seconds (+Inf: all of them). A gauge shaped like histogram buckets: use "
        "histogram_quantile() on it directly, never rate().",
        "Total latency (seconds) of the probes of runs created in the last 24 h, by probe "
        'kind; divided by cors_scanner_probes_24h{le="+Inf"} it is the mean.',
        "kind",
        [k.value for k in ProbeKind],
        facts.recent_probes,
    )

    findings = GaugeMetricFamily(
        PREFIX + "findings",
        "Tracked findings (one per fingerprint across runs) by severity and lifecycle status; "
        "open ones are new, open and reopened.",
        labels=["severity", "status"],
    )
    for sev in sorted(Severity, reverse=True):
        for st in FindingStatus:
            findings.add_metric([sev.value, st.value], facts.findings.get((sev.value, st.value), 0))
    regressions = CounterMetricFamily(
        PREFIX + "regressions",
        "Regressions the run diffs recorded (new or reopened exposure, raised severity...), "
        "by rule id.",
        labels=["rule"],
    )
    for rule in sorted(facts.regressions):
        regressions.add_metric([rule], facts.regressions[rule])
    work = GaugeMetricFamily(
        PREFIX + "work_items",
        "Work items of runs by state: queued (waiting for a worker), leased (in a worker's "
        "hands), dead (gave up after max attempts).",
        labels=["state"],
    )
    for w in WORK_STATES:
        work.add_metric([w.value], facts.work_items.get(w.value, 0))
    workers = GaugeMetricFamily(
        PREFIX + "workers_alive",
        "Worker processes whose heartbeat is recent (database clock).",
        value=facts.workers_alive,
    )

    deliveries = CounterMetricFamily(
        PREFIX + "webhook_deliveries",
        "Alert deliveries that reached a final state, by channel (webhook, slack, "
        "pagerduty) and outcome (delivered, dead, cancelled); kept when a hook is deleted.",
        labels=["channel", "outcome"],
    )
    for c, o, n in _counter(facts.deliveries_final, channels, [s.value for s in FINAL_DELIVERIES]):
        deliveries.add_metric([c, o], n)
    pending = GaugeMetricFamily(
        PREFIX + "webhook_deliveries_pending",
        "Alert deliveries not final yet, by channel and state (queued, leased).",
        labels=["channel", "state"],
    )
    for c in channels:
        for s in PENDING_DELIVERIES:
            pending.add_metric([c, s.value], facts.deliveries_pending.get((c, s.value), 0))
    attempts = CounterMetricFamily(
        PREFIX + "webhook_delivery_attempts",
        "Delivery attempts by channel and outcome (success, retry, fail, disable); kept when "
        "a hook is deleted.",
        labels=["channel", "outcome"],
    )
    for c, o, n in _counter(facts.delivery_attempts, channels, ATTEMPT_OUTCOMES):
        attempts.add_metric([c, o], n)
    recent_attempts, recent_attempt_seconds = _window(
        "webhook_delivery_attempts_24h",
        "webhook_delivery_attempt_duration_24h_seconds",
        "Delivery attempts started in the last 24 h, by channel, that took at most `le` "
        "seconds (+Inf: all of them). A gauge shaped like histogram buckets: use "
        "histogram_quantile() on it directly, never rate().",
        "Total duration (seconds) of the delivery attempts started in the last 24 h, by channel.",
        "channel",
        channels,
        facts.recent_attempts,
    )
    return [
        build,
        runs,
        active,
        durations,
        last,
        probes,
        recent_probes,
        recent_probe_seconds,
        findings,
        regressions,
        work,
        workers,
        deliveries,
        pending,
        attempts,
        recent_attempts,
        recent_attempt_seconds,
    ]


def _buckets(b: Buckets) -> list[tuple[str, float]]:
    """``HistogramMetricFamily`` buckets: canonical ``le`` strings, ending with +Inf = count."""
    out = [
        (floatToGoString(bound), float(n)) for bound, n in zip(b.bounds, b.cumulative, strict=True)
    ]
    return [*out, ("+Inf", float(b.count))]


def _counter(
    totals: dict[tuple[tuple[str, str], ...], int], channels: Sequence[str], outcomes: Iterable[str]
) -> Iterator[tuple[str, str, int]]:
    by_pair = {
        (dict(k).get("channel", ""), dict(k).get("outcome", "")): v for k, v in totals.items()
    }
    known = sorted({*outcomes, *(o for _, o in by_pair)})
    for c in sorted({*channels, *(c for c, _ in by_pair)}):
        for o in known:
            yield c, o, by_pair.get((c, o), 0)


def _window(
    name: str,
    seconds_name: str,
    help_counts: str,
    help_seconds: str,
    label: str,
    keys: Sequence[str],
    data: dict[str, Buckets],
) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    counts = GaugeMetricFamily(PREFIX + name, help_counts, labels=[label, "le"])
    seconds = GaugeMetricFamily(PREFIX + seconds_name, help_seconds, labels=[label], unit="seconds")
    for key in keys:
        b = data.get(key) or Buckets.empty(LATENCY_BUCKETS)
        for le, n in _buckets(b):
            counts.add_metric([key, le], n)
        seconds.add_metric([key], b.total)
    return counts, seconds


class _Snapshot(Collector):
    """Yields families computed before the scrape (the database is read asynchronously)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def render(facts: FleetFacts, accept: str | None) -> tuple[bytes, str]:
    """The exposition for a scraper's ``Accept`` header: (body, Content-Type)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(fleet_families(facts)))
    for collector in _PROCESS_COLLECTORS:
        registry.register(collector)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
