"""``GET /metrics``: the Prometheus exposition of the real app, parsed strictly, over real data.

The database is seeded with runs, probes, tracked findings, regression
events, work items, workers, hooks, deliveries and attempts (rows written
directly, as the worker and dispatcher would have, counters included); the
served text is parsed by a small strict parser of format 0.0.4 *and* by
``prometheus_client``'s own parsers (text and OpenMetrics), and its values
compared with what the rows say. The counters' promise -- never down, not
even when a hook and its deliveries are deleted -- is checked with real
deliveries to a loopback receiver through the real dispatcher.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from sqlalchemy import select

import scanner
from scanner.alerts.signing import WebhookSecret
from scanner.db import counters
from scanner.db.engine import Database
from scanner.db.runs import pack_exchanges
from scanner.db.tables import (
    DeliveryAttemptRow,
    FindingEventRow,
    HookDeliveryRow,
    HookRow,
    RunExchangeRow,
    RunRow,
    ScheduleRow,
    TrackedFindingRow,
    WorkerRow,
    WorkItemRow,
)
from tests.api.client import Api
from tests.api.conftest import ApiFactory
from tests.api.test_hooks import Receiver, _dispatch, _serve

METRICS = "/metrics"
WEIRD_SCHEDULE = 'night "ly" \\ batch\nB'
RULE = "reflect_any_origin_credentials"

# -- a strict parser of the text format 0.0.4 ----------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(
    r"[+-]?(Inf|NaN|[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?)"
)
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": (), "gauge": ()}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    type: str = ""
    help: str | None = None
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)


def _labels(text: str, line: str) -> tuple[Labels, str]:
    """Parse ``{a="x",b="y"}`` at the start of ``text``; the labels and the rest."""
    assert text.startswith("{"), line
    i = 1
    labels: list[tuple[str, str]] = []
    while True:
        if text[i] == "}":
            return tuple(labels), text[i + 1 :]
        match = _LABEL_NAME.match(text, i)
        assert match, f"bad label name in {line!r}"
        name = match.group()
        assert not name.startswith("__"), line
        i = match.end()
        assert text[i : i + 2] == '="', f'expected =" in {line!r}'
        i += 2
        value: list[str] = []
        while text[i] != '"':
            if text[i] == "\\":
                escaped = text[i + 1]
                assert escaped in ("\\", '"', "n"), f"bad escape in {line!r}"
                value.append("\n" if escaped == "n" else escaped)
                i += 2
            else:
                assert text[i] != "\n", line
                value.append(text[i])
                i += 1
        i += 1
        assert name not in dict(labels), f"repeated label {name} in {line!r}"
        labels.append((name, "".join(value)))
        if text[i] == ",":
            i += 1
        else:
            assert text[i] == "}", f"expected , or }} in {line!r}"


def _float(text: str, line: str) -> float:
    assert _VALUE.fullmatch(text), f"bad value {text!r} in {line!r}"
    return float(text.replace("Inf", "inf"))


def parse_exposition(text: str) -> dict[str, Family]:
    """Every family of the exposition, checking each line on the way."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text[:-1].split("\n"):
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert _NAME.fullmatch(name), line
            assert name not in families or families[name].help is None, f"HELP twice: {line}"
            assert re.fullmatch(r"([^\\]|\\\\|\\n)*", doc), f"bad HELP escape: {line!r}"
            current = families.setdefault(name, Family(name))
            current.help = doc
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in _SUFFIXES, line
            family = families.setdefault(name, Family(name))
            assert not family.type, f"TYPE twice: {line}"
            assert not family.samples, f"TYPE after samples: {line}"
            family.type = kind
            current = family
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        match = _NAME.match(line)
        assert match, f"bad sample name in {line!r}"
        name, rest = match.group(), line[match.end() :]
        labels: Labels = ()
        if rest.startswith("{"):
            labels, rest = _labels(rest, line)
        assert rest.startswith(" "), line
        value = _float(rest[1:], line)
        assert current is not None, f"sample before HELP/TYPE: {line}"
        assert current.type, f"sample before TYPE: {line}"
        suffix = name[len(current.name) :]
        assert name.startswith(current.name), f"{name} outside its family {current.name}"
        assert suffix in ("", *_SUFFIXES[current.type]), line
        if current.type == "histogram":
            assert suffix, f"a histogram sample has a suffix: {line}"
        key = (suffix, labels)
        assert key not in current.samples, f"duplicate series {line!r}"
        current.samples[key] = value
    for family in families.values():
        assert family.help, f"{family.name} has no HELP"
        assert family.type, f"{family.name} has no TYPE"
        assert family.name.startswith(("cors_scanner_", "process_", "python_")), family.name
        if family.type == "counter":
            assert family.name.endswith("_total"), family.name
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    series: dict[Labels, list[tuple[float, float]]] = {}
    for (suffix, labels), value in family.samples.items():
        if suffix == "_bucket":
            le = dict(labels)["le"]
            rest = tuple(kv for kv in labels if kv[0] != "le")
            series.setdefault(rest, []).append((_float(le, le), value))
    assert series, f"{family.name} has no buckets"
    for labels, buckets in series.items():
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds), f"{family.name}{labels}: buckets out of order"
        assert bounds[-1] == math.inf, f"{family.name}{labels}: no +Inf bucket"
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{family.name}{labels}: buckets not cumulative"
        assert counts[-1] == family.samples[("_count", labels)], f"{family.name}: +Inf != _count"
        assert ("_sum", labels) in family.samples


def value(families: dict[str, Family], name: str, suffix: str = "", **labels: str) -> float:
    family = families[name]
    wanted = set(labels.items())
    found = [v for (s, ls), v in family.samples.items() if s == suffix and set(ls) == wanted]
    assert len(found) == 1, (name, suffix, labels, family.samples)
    return found[0]


def bucket(families: dict[str, Family], name: str, le: str, **labels: str) -> float:
    return value(families, name, "_bucket", le=le, **labels)


# -- the seeded database --------------------------------------------------------------


@dataclass
class Seeded:
    now: datetime
    last_nightly: datetime


async def seed(database: Database) -> Seeded:
    now = datetime.now(UTC)
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731
    async with database.session() as s, s.begin():
        nightly = ScheduleRow(
            name=WEIRD_SCHEDULE,
            cron="0 2 * * *",
            timezone="UTC",
            selection={},
            created_at=ago(days=10),
            updated_at=ago(days=10),
        )
        s.add(nightly)
        await s.flush()

        def scan(status: str, trigger: str, created: datetime, seconds: float | None, **kw: Any):
            started = created + timedelta(seconds=1) if seconds is not None else None
            finished = (
                started + timedelta(seconds=seconds)
                if started is not None and status in ("completed", "failed", "cancelled")
                else None
            )
            row = RunRow(
                status=status,
                trigger=trigger,
                selection={},
                created_at=created,
                started_at=started,
                finished_at=finished,
                **kw,
            )
            s.add(row)
            return row

        recent = scan("completed", "api", ago(hours=1), 3.0, probes_total=10, probe_errors=2)
        scan("completed", "api", ago(hours=2), 90.0, probes_total=5, probe_errors=0)
        scan("failed", "manual", ago(hours=3), 0.5)
        old = scan(
            "completed",
            "schedule",
            ago(days=3),
            4000.0,
            schedule_id=nightly.id,
            probes_total=7,
            probe_errors=1,
        )
        latest = scan("completed", "schedule", ago(days=1), 20.0, schedule_id=nightly.id)
        # Active runs still have work left: with none, the worker's sweeper would
        # rightly finalise them while the test scrapes.
        scan(
            "running",
            "schedule",
            ago(minutes=5),
            None,
            schedule_id=nightly.id,
            items_total=3,
            items_remaining=2,
        )
        scan("queued", "api", ago(minutes=1), None, items_total=1, items_remaining=1)
        await s.flush()
        assert latest.finished_at is not None

        def probe(run: RunRow, key: str, kind: str, elapsed_ms: float, error: str | None = None):
            doc = {
                "key": key,
                "kind": kind,
                "origin": "https://attacker.example",
                "origin_kind": "arbitrary_origin",
                "method": "OPTIONS" if kind == "preflight" else "GET",
                "url": "https://api.acme.test/v1",
                "request_headers": [],
                "status": None if error else 200,
                "response_headers": [],
                "error": error,
                "elapsed_ms": elapsed_ms,
                "attempts": 1,
            }
            run.probe_seq = (run.probe_seq or 0) + 1
            # One endpoint per probe: each is its own stored exchange row.
            s.add(
                RunExchangeRow(
                    scan_id=run.id,
                    endpoint_id=run.probe_seq,
                    first_probe_id=run.probe_seq,
                    last_probe_id=run.probe_seq,
                    probe_count=1,
                    body=pack_exchanges([doc]),
                    timings={kind: [elapsed_ms]},
                )
            )

        probe(recent, "simple:a:0", "simple", 4.0)
        probe(recent, "simple:a:1", "simple", 40.0)
        probe(recent, "simple:a:2", "simple", 400.0, error="timeout")
        probe(recent, "preflight:a:0", "preflight", 7.0)
        probe(old, "simple:a:0", "simple", 9000.0)  # outside the 24 h window

        def tracked(fp: str, severity: str, status: str) -> None:
            s.add(
                TrackedFindingRow(
                    fingerprint=fp,
                    endpoint_id=1,
                    rule_id=RULE,
                    origin_class="arbitrary_origin",
                    severity=severity,
                    status=status,
                    title="t",
                    summary="s",
                    first_seen_run=recent.id,
                    last_seen_run=recent.id,
                    first_seen_at=now,
                    last_seen_at=now,
                    probe_keys=[],
                    version=1,
                )
            )

        tracked("fp1:a", "critical", "open")
        tracked("fp1:b", "critical", "open")
        tracked("fp1:c", "high", "new")
        tracked("fp1:d", "low", "resolved")

        for rule, regression in (
            (RULE, True),
            (RULE, True),
            ("wildcard_origin", True),
            (RULE, False),
        ):
            s.add(
                FindingEventRow(
                    kind="finding.new",
                    endpoint_id=1,
                    run_id=recent.id,
                    rule_id=rule,
                    severity="critical",
                    is_regression=regression,
                    at=now,
                )
            )

        for i, status in enumerate(("queued", "queued", "leased", "dead", "done", "done")):
            s.add(
                WorkItemRow(
                    run_id=recent.id,
                    kind="probe_batch",
                    batch_key=f"b{i}",
                    host_key="https://api.acme.test:443",
                    payload={},
                    status=status,
                    # Not due for a day: the API's embedded worker must not claim them.
                    available_at=now + timedelta(days=1),
                    lease_expires_at=now + timedelta(hours=1) if status == "leased" else None,
                    leased_by="w-live" if status == "leased" else None,
                    lease_token="t" if status == "leased" else None,
                    max_attempts=3,
                    created_at=now,
                )
            )

        s.add(WorkerRow(id="w-live", hostname="h", pid=1, started_at=now, last_heartbeat=now))
        s.add(
            WorkerRow(
                id="w-stale",
                hostname="h",
                pid=2,
                started_at=ago(hours=2),
                last_heartbeat=ago(hours=1),
            )
        )

        hooks = {}
        for kind in ("slack", "webhook"):
            hooks[kind] = HookRow(
                name=f"{kind}-hook",
                kind=kind,
                url="https://hooks.acme.test/x",
                github_signature=False,
                event_kinds=[],
                tags=[],
                owners=[],
                enabled=True,
                created_at=now,
                updated_at=now,
            )
            s.add(hooks[kind])
        await s.flush()

        def delivery(kind: str, status: str, attempts: list[tuple[str, float, datetime]]) -> None:
            row = HookDeliveryRow(
                hook_id=hooks[kind].id,
                event_type="finding.new",
                msg_id=f"msg_{kind}_{status}_{len(attempts)}",
                body="{}",
                status=status,
                attempts=len(attempts),
                next_attempt_at=now,
                created_at=now,
            )
            s.add(row)
            return_row.append((row, attempts))

        return_row: list[tuple[HookDeliveryRow, list[tuple[str, float, datetime]]]] = []
        delivery("slack", "delivered", [("retry", 30.0, now), ("success", 120.0, now)])
        delivery("slack", "queued", [])
        delivery("webhook", "dead", [("fail", 2000.0, ago(days=2))])
        await s.flush()
        for row, attempts in return_row:
            kind = "slack" if row.hook_id == hooks["slack"].id else "webhook"
            for n, (outcome, _ms, _at) in enumerate(attempts, start=1):
                final = row.status if n == len(attempts) else None
                await counters.count_delivery_attempt(
                    s, hook_id=hooks[kind].id, outcome=outcome, final=final
                )
            for n, (outcome, ms, at) in enumerate(attempts, start=1):
                s.add(
                    DeliveryAttemptRow(
                        delivery_id=row.id,
                        attempt=n,
                        started_at=at,
                        duration_ms=ms,
                        status=200,
                        outcome=outcome,
                        reason="r",
                        response_excerpt="",
                    )
                )
        return Seeded(now, latest.finished_at)


# -- tests ----------------------------------------------------------------------------


async def scrape(api: Api, **kw: Any) -> dict[str, Family]:
    reply = await api.get(METRICS, **kw)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    # prometheus_client's own parser reads it too, with the same families.
    families = parse_exposition(reply.text)
    parsed = {
        f.name + ("_total" if f.type == "counter" else ""): f.type for f in parse_text(reply.text)
    }
    assert parsed == {name: family.type for name, family in families.items()}
    return families


async def _embedded_worker_registered(database: Database) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        async with database.session() as s, s.begin():
            ids = set((await s.execute(select(WorkerRow.id))).scalars())
        if ids - {"w-live", "w-stale"}:
            return
        assert loop.time() < deadline, "the API's worker never registered"
        await asyncio.sleep(0.05)


async def test_metrics_reflect_the_database(api: Api) -> None:
    # The API's own worker registers at start-up (on SQLite it refuses to start
    # beside another live worker): let it, before the seeded workers appear.
    await _embedded_worker_registered(api.database)
    seeded = await seed(api.database)
    m = await scrape(api, token="read")

    assert value(m, "cors_scanner_build_info", version=scanner.__version__) == 1
    assert m["cors_scanner_build_info"].type == "gauge"

    # Runs: finished ones by trigger and outcome, unfinished ones by status.
    assert m["cors_scanner_runs_total"].type == "counter"
    assert value(m, "cors_scanner_runs_total", trigger="api", outcome="completed") == 2
    assert value(m, "cors_scanner_runs_total", trigger="manual", outcome="failed") == 1
    assert value(m, "cors_scanner_runs_total", trigger="schedule", outcome="completed") == 2
    assert value(m, "cors_scanner_runs_total", trigger="api", outcome="cancelled") == 0
    assert value(m, "cors_scanner_runs_active", status="running") == 1
    assert value(m, "cors_scanner_runs_active", status="queued") == 1

    # Run durations (a real, cumulative histogram): api 3 s and 90 s; schedule
    # 4000 s and 20 s; manual 0.5 s.
    h = "cors_scanner_run_duration_seconds"
    assert m[h].type == "histogram"
    assert bucket(m, h, "1.0", trigger="api") == 0
    assert bucket(m, h, "5.0", trigger="api") == 1
    assert bucket(m, h, "120.0", trigger="api") == 2
    assert value(m, h, "_count", trigger="api") == 2
    assert value(m, h, "_sum", trigger="api") == pytest.approx(93.0, abs=0.01)
    assert bucket(m, h, "30.0", trigger="schedule") == 1
    assert bucket(m, h, "3600.0", trigger="schedule") == 1
    assert bucket(m, h, "7200.0", trigger="schedule") == 2
    assert value(m, h, "_sum", trigger="schedule") == pytest.approx(4020.0, abs=0.01)
    assert bucket(m, h, "1.0", trigger="manual") == 1

    # The newest completed run of the schedule, under its (escaped) name.
    last = value(m, "cors_scanner_last_run_completed_timestamp_seconds", schedule=WEIRD_SCHEDULE)
    assert last == pytest.approx(seeded.last_nightly.timestamp(), abs=0.001)

    # Probes: every run's counters; the 24 h latency window is a gauge, by kind and le.
    assert value(m, "cors_scanner_probes_total", outcome="response") == 8 + 5 + 6
    assert value(m, "cors_scanner_probes_total", outcome="error") == 3
    p = "cors_scanner_probes_24h"
    assert m[p].type == "gauge"
    assert value(m, p, kind="simple", le="+Inf") == 3
    assert value(m, p, kind="simple", le="0.005") == 1
    assert value(m, p, kind="simple", le="0.05") == 2
    assert value(m, p, kind="simple", le="0.5") == 3
    assert value(m, p, kind="preflight", le="+Inf") == 1
    assert value(m, p, kind="error_path", le="+Inf") == 0
    assert value(m, "cors_scanner_probe_duration_24h_seconds", kind="simple") == pytest.approx(
        0.444
    )
    assert "24 h" in (m[p].help or "")
    assert "cors_scanner_probe_duration_seconds" not in m  # the window is no histogram

    # Findings, regressions, work, workers.
    assert value(m, "cors_scanner_findings", severity="critical", status="open") == 2
    assert value(m, "cors_scanner_findings", severity="high", status="new") == 1
    assert value(m, "cors_scanner_findings", severity="low", status="resolved") == 1
    assert value(m, "cors_scanner_findings", severity="medium", status="open") == 0
    assert value(m, "cors_scanner_regressions_total", rule=RULE) == 2
    assert value(m, "cors_scanner_regressions_total", rule="wildcard_origin") == 1
    assert value(m, "cors_scanner_work_items", state="queued") == 2
    assert value(m, "cors_scanner_work_items", state="leased") == 1
    assert value(m, "cors_scanner_work_items", state="dead") == 1
    assert not any(
        dict(ls).get("state") == "done" for _, ls in m["cors_scanner_work_items"].samples
    )
    # The seeded live worker and the API's embedded one; not the stale one.
    assert value(m, "cors_scanner_workers_alive") == 2

    # Deliveries: final ones by channel and outcome, pending ones, attempts, latency (24 h).
    d = "cors_scanner_webhook_deliveries_total"
    assert value(m, d, channel="slack", outcome="delivered") == 1
    assert value(m, d, channel="webhook", outcome="dead") == 1
    assert value(m, d, channel="pagerduty", outcome="delivered") == 0
    assert value(m, "cors_scanner_webhook_deliveries_pending", channel="slack", state="queued") == 1
    a = "cors_scanner_webhook_delivery_attempts_total"
    assert value(m, a, channel="slack", outcome="retry") == 1
    assert value(m, a, channel="slack", outcome="success") == 1
    assert value(m, a, channel="webhook", outcome="fail") == 1
    w = "cors_scanner_webhook_delivery_attempts_24h"
    assert m[w].type == "gauge"
    assert value(m, w, channel="slack", le="+Inf") == 2
    assert value(m, w, channel="slack", le="0.05") == 1
    assert value(m, w, channel="webhook", le="+Inf") == 0  # its attempt was 2 days ago
    assert value(
        m, "cors_scanner_webhook_delivery_attempt_duration_24h_seconds", channel="slack"
    ) == pytest.approx(0.15)

    # The process answering the scrape describes itself too.
    assert m["process_cpu_seconds_total"].type == "counter"
    assert "python_info" in m


async def test_no_label_carries_an_unbounded_value(api: Api) -> None:
    await seed(api.database)
    m = await scrape(api, token="read")
    allowed = {
        "version",
        "trigger",
        "outcome",
        "status",
        "schedule",
        "kind",
        "severity",
        "rule",
        "state",
        "channel",
        "le",
    }
    for family in m.values():
        if not family.name.startswith("cors_scanner_"):
            continue
        for _, labels in family.samples:
            names = {n for n, _ in labels}
            assert names <= allowed, (family.name, names)
            assert not any("://" in v for _, v in labels), (family.name, labels)


async def test_an_empty_database_still_gives_every_family(api: Api) -> None:
    m = await scrape(api, token="read")
    for name in (
        "cors_scanner_runs_total",
        "cors_scanner_run_duration_seconds",
        "cors_scanner_probes_24h",
        "cors_scanner_findings",
        "cors_scanner_work_items",
        "cors_scanner_workers_alive",
        "cors_scanner_webhook_deliveries_total",
        "cors_scanner_webhook_delivery_attempts_total",
    ):
        assert name in m
    assert value(m, "cors_scanner_run_duration_seconds", "_count", trigger="api") == 0
    assert bucket(m, "cors_scanner_run_duration_seconds", "+Inf", trigger="api") == 0
    assert value(m, "cors_scanner_work_items", state="queued") == 0
    assert value(m, "cors_scanner_webhook_deliveries_total", channel="webhook", outcome="dead") == 0


async def test_openmetrics_is_negotiated(api: Api) -> None:
    await seed(api.database)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    reply = await api.get(METRICS, token="read", headers={"Accept": accept})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert "Accept" in reply.headers["Vary"]
    assert reply.text.endswith("# EOF\n")
    # The strict OpenMetrics parser of prometheus_client accepts every line.
    families = {f.name: f for f in parse_openmetrics(reply.text)}
    assert families["cors_scanner_runs"].type == "counter"
    assert families["cors_scanner_build"].type == "info"
    assert families["cors_scanner_run_duration_seconds"].type == "histogram"
    assert families["cors_scanner_run_duration_seconds"].unit == "seconds"
    assert families["cors_scanner_probes_24h"].type == "gauge"
    assert families["cors_scanner_webhook_delivery_attempts"].type == "counter"
    assert families["process_cpu_seconds"].type == "counter"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["cors_scanner_webhook_delivery_attempts"].samples
    }
    assert (
        samples[
            (
                "cors_scanner_webhook_delivery_attempts_total",
                (("channel", "slack"), ("outcome", "retry")),
            )
        ]
        == 1
    )
    # Without an OpenMetrics Accept, the classic text format.
    plain = await api.get(METRICS, token="read", headers={"Accept": "text/plain"})
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def _counters(families: dict[str, Family]) -> dict[tuple[str, str, Labels], float]:
    """Every sample that must never go down: counters and cumulative-histogram series."""
    out: dict[tuple[str, str, Labels], float] = {}
    for family in families.values():
        if family.type not in ("counter", "histogram") or not family.name.startswith(
            "cors_scanner_"
        ):
            continue
        for (suffix, labels), v in family.samples.items():
            if suffix != "_sum":
                out[(family.name, suffix, labels)] = v
    return out


def _never_fell(before: dict[str, Family], after: dict[str, Family]) -> None:
    old, new = _counters(before), _counters(after)
    fell = {k: (old[k], new.get(k)) for k in old if new.get(k, -1) < old[k]}
    assert not fell, f"counters went down: {fell}"


async def test_counters_survive_a_hook_being_deleted(serve_api: ApiFactory) -> None:
    api = await serve_api(hook_allow_loopback=True)
    receiver = Receiver()
    server = await _serve(receiver)
    try:
        url = str(server.make_url("/hook"))
        created = await api.post("/api/v1/hooks", {"name": "soc", "kind": "webhook", "url": url})
        assert created.status == 201, created.text
        hook_id = created.body["id"]
        receiver.secrets = [WebhookSecret.parse(created.body["secret"])]
        # A second hook the receiver cannot verify: its deliveries are refused (401).
        other = await api.post("/api/v1/hooks", {"name": "other", "kind": "webhook", "url": url})
        other_id = other.body["id"]

        start = await scrape(api, token="read")
        a = "cors_scanner_webhook_delivery_attempts_total"
        d = "cors_scanner_webhook_deliveries_total"
        for hook in (hook_id, hook_id, other_id):
            assert (await api.post(f"/api/v1/hooks/{hook}/test", token="write")).status == 202
        await _dispatch(api)
        sent = await scrape(api, token="read")
        _never_fell(start, sent)
        assert value(sent, a, channel="webhook", outcome="success") == 2
        assert value(sent, d, channel="webhook", outcome="delivered") == 2
        refused = sum(
            v for (sfx, ls), v in sent[a].samples.items() if dict(ls)["outcome"] != "success"
        )
        assert refused == 1  # the unverifiable one, whatever the classification
        assert len(receiver.requests) == 3

        # Deleting the hooks deletes their deliveries and attempt logs, not the totals.
        for hook in (hook_id, other_id):
            assert (await api.delete(f"/api/v1/hooks/{hook}", token="admin")).status == 204
        gone = await scrape(api, token="read")
        _never_fell(sent, gone)
        assert value(gone, a, channel="webhook", outcome="success") == 2
        assert value(gone, d, channel="webhook", outcome="delivered") == 2
        assert (
            value(
                gone, "cors_scanner_webhook_deliveries_pending", channel="webhook", state="queued"
            )
            == 0
        )
        async with api.database.session() as s, s.begin():
            assert (await s.execute(select(DeliveryAttemptRow.id))).first() is None

        # A new hook counts on from there.
        again = await api.post("/api/v1/hooks", {"name": "soc2", "kind": "webhook", "url": url})
        receiver.secrets = [WebhookSecret.parse(again.body["secret"])]
        await api.post(f"/api/v1/hooks/{again.body['id']}/test", token="write")
        await _dispatch(api)
        later = await scrape(api, token="read")
        _never_fell(gone, later)
        assert value(later, a, channel="webhook", outcome="success") == 3
    finally:
        await server.close()


async def test_metrics_need_a_read_token_by_default(api: Api) -> None:
    reply = await api.get(METRICS, token=None)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    document = (await api.get("/api/v1/openapi.json", token=None)).body
    assert document["paths"]["/metrics"]["get"]["x-required-scope"] == "read"


async def test_metrics_can_be_public(serve_api: ApiFactory) -> None:
    api = await serve_api(metrics_public=True)
    families = await scrape(api, token=None)
    assert "cors_scanner_build_info" in families
    document = (await api.get("/api/v1/openapi.json", token=None)).body
    assert document["paths"]["/metrics"]["get"]["security"] == []


def test_the_public_setting_is_read_from_the_environment() -> None:
    from scanner.settings import Settings

    assert Settings.from_env({}).metrics_public is False
    assert Settings.from_env({"CORS_SCANNER_METRICS_PUBLIC": "true"}).metrics_public is True


async def test_label_values_and_help_are_escaped(api: Api) -> None:
    # The schedule name carries a quote, a backslash and a newline (see seed()).
    await seed(api.database)
    reply = await api.get(METRICS, token="read")
    assert 'schedule="night \\"ly\\" \\\\ batch\\nB"' in reply.text
    [family] = [
        f
        for f in parse_text(reply.text)
        if f.name == "cors_scanner_last_run_completed_timestamp_seconds"
    ]
    assert family.samples[0].labels["schedule"] == WEIRD_SCHEDULE
