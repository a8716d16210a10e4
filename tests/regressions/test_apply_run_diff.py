"""apply_run_diff over stored runs of a real target, on SQLite and PostgreSQL.

Each run scans the switchable target with the real engine, stores it, and
finalises it (status + diff in one transaction), as the worker does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scanner.core.lifecycle import EventKind, FindingStatus
from scanner.db import findings as store
from scanner.db import hooks
from scanner.db.findings import FindingQuery
from scanner.db.hooks import HookInput, HookKind
from scanner.db.tables import FindingEventRow, HookDeliveryRow, TrackedFindingRow
from scanner.errors import Conflict
from tests.regressions.harness import Runs, webhook_body

RULE = "reflect_any_origin_credentials"


async def _finding(runs: Runs, rule: str = RULE) -> store.FindingRecord:
    async with runs.database.session() as session, session.begin():
        page = await store.list_findings(session, FindingQuery(rule_id=rule), limit=10)
    assert len(page.items) == 1, [f.finding.rule_id for f in page.items]
    return page.items[0]


async def _kinds(runs: Runs, run_index: int) -> list[str]:
    outcome = runs.outcomes[run_index]
    async with runs.database.session() as session, session.begin():
        records = await store.events_by_id(session, list(outcome.event_ids))
    return [r.event.kind.value for r in records]


async def _add_webhook(runs: Runs) -> int:
    async with runs.database.session() as session, session.begin():
        hook, _ = await hooks.create_hook(
            session,
            HookInput(name="soc", kind=HookKind.WEBHOOK, url="http://127.0.0.1:9/hook"),
            by="test",
            now=runs.now,
        )
    return hook.id


async def test_new_open_resolved_reopened(runs: Runs) -> None:
    await runs.run("allowlist")  # baseline: clean
    assert runs.outcomes[0].baseline_endpoints == (runs.endpoint_id,)
    first = await runs.run("reflect")
    assert first.baseline_endpoints == ()
    assert EventKind.FINDING_NEW.value in await _kinds(runs, 1)
    found = await _finding(runs)
    assert found.finding.status is FindingStatus.NEW
    assert found.finding.severity.value == "critical"

    await runs.run("reflect")
    assert (await _finding(runs)).finding.status is FindingStatus.OPEN

    await runs.run("allowlist")
    resolved = (await _finding(runs)).finding
    assert resolved.status is FindingStatus.RESOLVED
    assert resolved.resolved_at == runs.now
    assert EventKind.FINDING_RESOLVED.value in await _kinds(runs, 3)

    await runs.run("reflect")
    back = (await _finding(runs)).finding
    assert back.status is FindingStatus.REOPENED
    assert back.reopen_count == 1
    assert EventKind.FINDING_REOPENED.value in await _kinds(runs, 4)
    async with runs.database.session() as session, session.begin():
        history = await store.finding_history(session, found.id)
    assert [h.event.kind for h in history if h.event.kind.value.startswith("finding.")] == [
        EventKind.FINDING_NEW,
        EventKind.FINDING_RESOLVED,
        EventKind.FINDING_REOPENED,
    ]
    # version grows with every change, one row per fingerprint
    assert back.version == 4
    async with runs.database.session() as session, session.begin():
        count = await session.scalar(
            select(func.count())
            .select_from(TrackedFindingRow)
            .where(TrackedFindingRow.rule_id == RULE)
        )
    assert count == 1


async def test_errored_endpoint_leaves_findings_unresolved(runs: Runs) -> None:
    await runs.run("allowlist")
    await runs.run("reflect")
    await runs.run("down")
    after = (await _finding(runs)).finding
    assert after.status is FindingStatus.NEW  # untouched, not resolved
    assert after.not_verified_run == runs.outcomes[2].run_id
    assert after.unverified
    assert EventKind.NOT_VERIFIED.value in await _kinds(runs, 2)
    assert EventKind.FINDING_RESOLVED.value not in await _kinds(runs, 2)


async def test_suppression_survives_rescans_and_expiry_reopens(runs: Runs) -> None:
    await runs.run("allowlist")
    await runs.run("reflect")
    found = await _finding(runs)
    async with runs.database.session() as session, session.begin():
        record, event = await store.triage(
            session,
            found.id,
            status="accepted",
            by="alice",
            reason="internal tool, fix planned",
            until=runs.now + timedelta(days=2, hours=12),
            now=runs.now,
        )
    assert record.finding.status is FindingStatus.SUPPRESSED
    assert event.kind is EventKind.SUPPRESSED
    hook_id = await _add_webhook(runs)

    await runs.run("reflect")  # day +1: still suppressed, no alert
    kept = (await _finding(runs)).finding
    assert kept.status is FindingStatus.SUPPRESSED
    assert kept.triage is not None
    assert kept.triage.by == "alice"
    assert runs.outcomes[-1].delivery_ids == ()

    await runs.run("reflect")  # day +2: still within the decision
    assert (await _finding(runs)).finding.status is FindingStatus.SUPPRESSED

    await runs.run("reflect")  # day +3: the decision expired
    expired = (await _finding(runs)).finding
    assert expired.status is FindingStatus.OPEN
    assert expired.triage is None
    assert EventKind.TRIAGE_EXPIRED.value in await _kinds(runs, len(runs.outcomes) - 1)
    async with runs.database.session() as session, session.begin():
        page = await hooks.list_deliveries(session, hook_id, limit=10)
    # triage_expired is opt-in (event_kinds); by default the hook hears nothing
    assert [d.event_type for d in page.items] == []


async def test_regression_writes_outbox_rows_with_evidence(runs: Runs) -> None:
    hook_id = await _add_webhook(runs)
    await runs.run("allowlist")
    assert runs.outcomes[0].delivery_ids == ()  # baseline: nothing alerted
    outcome = await runs.run("reflect")
    assert outcome.delivery_ids
    async with runs.database.session() as session, session.begin():
        page = await hooks.list_deliveries(session, hook_id, limit=50)
        rows = list(
            (
                await session.execute(
                    select(HookDeliveryRow).where(HookDeliveryRow.id.in_(outcome.delivery_ids))
                )
            ).scalars()
        )
    # One root cause, one delivery: the new finding, the drift inside it.
    assert [d.event_type for d in page.items] == [EventKind.FINDING_NEW.value]
    new = next(r for r in rows if r.event_type == EventKind.FINDING_NEW.value)
    body = webhook_body(new.events)
    assert body["data"]["after"]["changed_total"] >= 1
    assert body["data"]["after"]["probes"]
    assert body["type"] == "finding.new"
    assert body["data"]["rule_id"] == RULE
    assert body["data"]["endpoint"]["owner"] == "payments-team"
    after = body["data"]["after"]
    assert after["severity"] == "critical"
    assert any(
        name.lower() == "access-control-allow-credentials"
        for e in after["evidence"]
        for name, _ in e["response_headers"]
    )
    assert body["data"]["before"]["probes"]  # how the same probes were answered before


async def test_failed_finalisation_rolls_back_findings_events_and_outbox(runs: Runs) -> None:
    await _add_webhook(runs)
    await runs.run("allowlist")
    with pytest.raises(RuntimeError):
        await runs.run("reflect", fail_after_diff=True)
    async with runs.database.session() as session, session.begin():
        findings = await session.scalar(select(func.count()).select_from(TrackedFindingRow))
        events = await session.scalar(
            select(func.count())
            .select_from(FindingEventRow)
            .where(FindingEventRow.kind == EventKind.FINDING_NEW.value)
        )
        deliveries = await session.scalar(select(func.count()).select_from(HookDeliveryRow))
    assert (findings, events, deliveries) == (0, 0, 0)


async def test_stale_version_is_a_conflict(runs: Runs) -> None:
    await runs.run("allowlist")
    await runs.run("reflect")
    found = await _finding(runs)
    async with runs.database.session() as session, session.begin():
        await store.triage(
            session,
            found.id,
            status="suppressed",
            by="bob",
            reason="false positive",
            until=None,
            now=runs.now,
        )
    # the copy read before bob's decision
    stale = replace(found.finding, summary="stale", version=found.finding.version + 1)
    async with runs.database.session() as session, session.begin():
        with pytest.raises(Conflict):
            await store.save_tracked(session, [stale])
    kept = (await _finding(runs)).finding
    assert kept.status is FindingStatus.SUPPRESSED


async def test_expired_acceptance_reopens_between_runs(runs: Runs) -> None:
    await runs.run("allowlist")
    await runs.run("reflect")
    found = await _finding(runs)
    async with runs.database.session() as session, session.begin():
        await store.triage(
            session,
            found.id,
            status="accepted",
            by="alice",
            reason="until the fix ships",
            until=runs.now + timedelta(hours=1),
            now=runs.now,
        )
    async with runs.database.session() as session, session.begin():
        early = await store.expire_triage_decisions(session, runs.now + timedelta(minutes=30))
    assert early == []
    async with runs.database.session() as session, session.begin():
        ended = await store.expire_triage_decisions(session, runs.now + timedelta(hours=2))
    assert [e.kind for e in ended] == [EventKind.TRIAGE_EXPIRED]
    after = (await _finding(runs)).finding
    assert after.status is FindingStatus.OPEN
    assert after.triage is None


async def test_the_dispatcher_sweep_ends_expired_decisions_and_alerts_subscribers(
    runs: Runs,
) -> None:
    from scanner.alerts.dispatcher import Dispatcher, DispatcherConfig

    await runs.run("allowlist")
    await runs.run("reflect")
    found = await _finding(runs)
    async with runs.database.session() as session, session.begin():
        await store.triage(
            session,
            found.id,
            status="accepted",
            by="alice",
            reason="for an hour",
            until=runs.now + timedelta(hours=1),  # runs.now is in the past: already over
            now=runs.now,
        )
        hook, _ = await hooks.create_hook(
            session,
            HookInput(
                name="triage-watch",
                kind=HookKind.WEBHOOK,
                url="http://127.0.0.1:9/hook",
                event_kinds=("finding.triage_expired",),
            ),
            by="test",
            now=runs.now,
        )
    dispatcher = Dispatcher(runs.database, DispatcherConfig(worker_id="sweeper"))
    assert await dispatcher.sweep_triage() == 1
    assert (await _finding(runs)).finding.status is FindingStatus.OPEN
    async with runs.database.session() as session, session.begin():
        page = await hooks.list_deliveries(session, hook.id, limit=10)
    assert [d.event_type for d in page.items] == ["finding.triage_expired"]
    assert await dispatcher.sweep_triage() == 0
