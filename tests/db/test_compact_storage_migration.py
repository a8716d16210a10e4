"""Migration 0006 packs the probe rows of existing runs, and unpacks them on downgrade.

A database at 0005 holds a run stored the old way (one ``scan_probes`` row per
exchange of a real assessment). After the upgrade the probes API returns the
same exchanges with the same ids, the stored run's report is rebuilt from
them, and a new save continues the run's ids; after a downgrade the rows are
back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from scanner.core.documents import policy_to_json, probe_to_json
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.db import runs
from scanner.db.engine import Database
from scanner.engine import Engine, ScanOptions, Target
from scanner.hostnames import default_public_suffixes
from scanner.reports.stored import load_run
from tests.api.targets import serve_target

_PROBE_FIELDS = (
    "kind",
    "purpose",
    "origin",
    "origin_kind",
    "method",
    "url",
    "request_headers",
    "status",
    "reason",
    "response_headers",
    "error",
    "error_detail",
    "elapsed_ms",
    "attempts",
    "verdict",
)
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def _old_rows(database: Database) -> list[dict[str, Any]]:
    meta = sa.MetaData()
    async with database.engine.connect() as conn:
        await conn.run_sync(lambda c: meta.reflect(c, only=["scan_probes"]))
        table = meta.tables["scan_probes"]
        rows = await conn.execute(sa.select(table).order_by(table.c.id))
        return [dict(r._mapping) for r in rows]


async def test_old_probe_rows_survive_upgrade_and_downgrade(empty_database: Database) -> None:
    db = empty_database
    async with serve_target() as base, Engine(ScanOptions(), default_public_suffixes()) as engine:
        assessment = await engine.assess(Target(Endpoint(f"{base}/reflect-credentials"), Policy()))
    docs = [probe_to_json(p) for p in assessment.probes]
    await db.upgrade("0005_dashboard_sessions")
    meta = sa.MetaData()
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.reflect)
        scans, endpoints, probes = (
            meta.tables[t] for t in ("scans", "scan_endpoints", "scan_probes")
        )
        for scan_id in (1, 2):
            await conn.execute(
                sa.insert(scans).values(
                    id=scan_id,
                    status="completed",
                    trigger="manual",
                    selection={},
                    endpoints_total=1,
                    endpoints_done=1,
                    probes_total=len(docs),
                    probe_errors=0,
                    findings_total=0,
                    created_at=T0,
                    started_at=T0,
                    finished_at=T0,
                    items_total=0,
                    items_remaining=0,
                )
            )
            await conn.execute(
                sa.insert(endpoints).values(
                    scan_id=scan_id,
                    endpoint_id=7,
                    method="GET",
                    url=assessment.endpoint.url,
                    reachable=True,
                    probe_count=len(docs),
                    probe_errors=0,
                    policy=policy_to_json(Policy()),
                    unchecked=[],
                )
            )
            await conn.execute(
                sa.insert(probes),
                [
                    {"scan_id": scan_id, "endpoint_id": 7, "probe_key": d["key"]}
                    | {f: d[f] for f in _PROBE_FIELDS}
                    for d in docs
                ],
            )
    before = await _old_rows(db)
    assert len(before) == 2 * len(docs)

    await db.upgrade("head")
    async with db.session() as session:
        page = await runs.list_run_probes(session, 2, limit=500)
        stored = await load_run(session, 2)
    by_id = {r["id"]: r for r in before}
    assert [p.id for p in page.items] == [r["id"] for r in before if r["scan_id"] == 2]
    for probe in page.items:
        old = by_id[probe.id]
        assert probe.probe_key == old["probe_key"]
        assert [getattr(probe, f) for f in _PROBE_FIELDS] == [old[f] for f in _PROBE_FIELDS]
    assert len(stored.assessments[0].probes) == len(docs)
    assert [p.observation.request.key for p in stored.assessments[0].probes] == [
        d["key"] for d in docs
    ]

    # A later save in the migrated run continues its ids.
    async with db.session() as session, session.begin():
        await session.execute(sa.text("UPDATE scans SET status = 'running' WHERE id = 2"))
        await runs.save_assessment(session, 2, 8, assessment)
        page = await runs.list_run_probes(session, 2, limit=500)
    ids = [p.id for p in page.items]
    assert len(ids) == len(set(ids)) == 2 * len(docs)
    assert ids == sorted(ids)

    await db.downgrade("0005_dashboard_sessions")
    after = await _old_rows(db)
    assert len(after) == 3 * len(docs)
    key = ("scan_id", "endpoint_id", "probe_key", *_PROBE_FIELDS)
    old_keys = sorted(tuple(str(r[k]) for k in key) for r in before)
    assert old_keys == sorted(tuple(str(r[k]) for k in key) for r in after if r["endpoint_id"] == 7)
