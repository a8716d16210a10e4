"""Scan storage (scanner.db.scans) on both databases: idempotent saves, final states, lists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scanner.core.checks import Assessment
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.db import scans
from scanner.db.engine import Database
from scanner.db.scans import ScanSelection, ScanStatus, ScanTrigger
from scanner.engine import Engine, ScanOptions, Target
from scanner.errors import Conflict, InputError, NotFound
from scanner.hostnames import default_public_suffixes
from tests.api.targets import serve_target


@pytest.fixture
async def assessment() -> AsyncIterator[Assessment]:
    """A real assessment of a misbehaving endpoint (findings and probes to store)."""
    async with serve_target() as base, Engine(ScanOptions(), default_public_suffixes()) as engine:
        yield await engine.assess(Target(Endpoint(f"{base}/reflect-credentials"), Policy()))


async def _new_scan(database: Database) -> int:
    async with database.session() as session, session.begin():
        scan = await scans.create_scan(
            session,
            selection=ScanSelection(endpoint_ids=(7,)),
            trigger=ScanTrigger.MANUAL,
            requested_by="cli",
            endpoints_total=1,
        )
        assert await scans.mark_running(session, scan.id)
    return scan.id


async def test_saving_twice_replaces_and_never_counts_twice(
    database: Database, assessment: Assessment
) -> None:
    scan_id = await _new_scan(database)
    for _ in range(2):
        async with database.session() as session, session.begin():
            await scans.save_assessment(session, scan_id, 7, assessment)
    async with database.session() as session, session.begin():
        scan = await scans.get_scan(session, scan_id)
        probes = await scans.list_scan_probes(session, scan_id, limit=500)
        findings = await scans.list_scan_findings(session, scan_id, limit=500)
    assert scan.endpoints_done == 1
    assert scan.probes_total == len(assessment.probes) == len(probes.items)
    assert scan.findings_total == len(findings.items) > 0
    assert scan.severity_counts["critical"] >= 1
    assert {p.probe_key for p in probes.items} == {
        p.observation.request.key for p in assessment.probes
    }


async def test_final_states_are_final(database: Database, assessment: Assessment) -> None:
    scan_id = await _new_scan(database)
    async with database.session() as session, session.begin():
        assert await scans.finish_scan(session, scan_id, ScanStatus.CANCELLED, error="stop")
        assert not await scans.finish_scan(session, scan_id, ScanStatus.COMPLETED)
    with pytest.raises(Conflict):
        async with database.session() as session, session.begin():
            await scans.save_assessment(session, scan_id, 7, assessment)
    async with database.session() as session, session.begin():
        scan = await scans.get_scan(session, scan_id)
    assert scan.status is ScanStatus.CANCELLED
    assert scan.error == "stop"
    assert scan.probes_total == 0


async def test_unfinished_scans_of_a_dead_process_are_failed(database: Database) -> None:
    running = await _new_scan(database)
    async with database.session() as session, session.begin():
        queued = await scans.create_scan(
            session,
            selection=ScanSelection(),
            trigger=ScanTrigger.API,
            requested_by=None,
            endpoints_total=0,
        )
        assert await scans.fail_unfinished_scans(session, reason="interrupted") == 2
        assert (await scans.get_scan(session, running)).status is ScanStatus.FAILED
        assert (await scans.get_scan(session, queued.id)).error == "interrupted"


async def test_lists_are_keyset_paginated(database: Database) -> None:
    ids = [await _new_scan(database) for _ in range(5)]
    async with database.session() as session, session.begin():
        first = await scans.list_scans(session, limit=2)
        second = await scans.list_scans(session, limit=2, cursor=first.next_cursor)
        third = await scans.list_scans(session, limit=2, cursor=second.next_cursor)
        running = await scans.list_scans(session, limit=10, status=ScanStatus.RUNNING)
        with pytest.raises(InputError):
            await scans.list_scans(session, limit=2, cursor="garbage!")
        with pytest.raises(NotFound):
            await scans.list_scan_probes(session, 999, limit=2)
    walked = [s.id for page in (first, second, third) for s in page.items]
    assert walked == sorted(ids, reverse=True)
    assert third.next_cursor is None
    assert len(running.items) == 5
