"""Run storage (scanner.db.runs) on both databases: idempotent saves, final states, lists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scanner.core.checks import Assessment
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.db import runs
from scanner.db.engine import Database
from scanner.db.runs import RunSelection, RunStatus, RunTrigger
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
        scan = await runs.create_run(
            session,
            selection=RunSelection(endpoint_ids=(7,)),
            trigger=RunTrigger.MANUAL,
            requested_by="cli",
            endpoints_total=1,
        )
        assert await runs.mark_running(session, scan.id)
    return scan.id


async def test_saving_twice_replaces_and_never_counts_twice(
    database: Database, assessment: Assessment
) -> None:
    scan_id = await _new_scan(database)
    for _ in range(2):
        async with database.session() as session, session.begin():
            await runs.save_assessment(session, scan_id, 7, assessment)
    async with database.session() as session, session.begin():
        scan = await runs.get_run(session, scan_id)
        probes = await runs.list_run_probes(session, scan_id, limit=500)
        findings = await runs.list_run_findings(session, scan_id, limit=500)
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
        assert await runs.finish_run(session, scan_id, RunStatus.CANCELLED, error="stop")
        assert not await runs.finish_run(session, scan_id, RunStatus.COMPLETED)
    with pytest.raises(Conflict):
        async with database.session() as session, session.begin():
            await runs.save_assessment(session, scan_id, 7, assessment)
    async with database.session() as session, session.begin():
        scan = await runs.get_run(session, scan_id)
    assert scan.status is RunStatus.CANCELLED
    assert scan.error == "stop"
    assert scan.probes_total == 0


async def test_unfinished_scans_of_a_dead_process_are_failed(database: Database) -> None:
    running = await _new_scan(database)
    async with database.session() as session, session.begin():
        queued = await runs.create_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.API,
            requested_by=None,
            endpoints_total=0,
        )
        assert await runs.fail_unfinished_runs(session, reason="interrupted") == 2
        assert (await runs.get_run(session, running)).status is RunStatus.FAILED
        assert (await runs.get_run(session, queued.id)).error == "interrupted"


async def test_lists_are_keyset_paginated(database: Database) -> None:
    ids = [await _new_scan(database) for _ in range(5)]
    async with database.session() as session, session.begin():
        first = await runs.list_runs(session, limit=2)
        second = await runs.list_runs(session, limit=2, cursor=first.next_cursor)
        third = await runs.list_runs(session, limit=2, cursor=second.next_cursor)
        running = await runs.list_runs(session, limit=10, status=RunStatus.RUNNING)
        with pytest.raises(InputError):
            await runs.list_runs(session, limit=2, cursor="garbage!")
        with pytest.raises(NotFound):
            await runs.list_run_probes(session, 999, limit=2)
    walked = [s.id for page in (first, second, third) for s in page.items]
    assert walked == sorted(ids, reverse=True)
    assert third.next_cursor is None
    assert len(running.items) == 5
