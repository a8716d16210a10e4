"""Runs, triage, hooks, schedules and tokens through their use cases, on a real database.

What every front end (the API, the CLI, the dashboard) gets: one validation,
one transaction, one audit entry per change, and nothing stored or audited
when a change is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scanner.db.findings import FindingQuery
from scanner.db.hooks import DeliveryStatus, HookInput, HookKind
from scanner.db.runs import RunSelection, RunStatus, RunTrigger
from scanner.db.schedules import ScheduleInput
from scanner.db.tables import WorkItemRow
from scanner.engine import Engine
from scanner.errors import Conflict, NotFound, UnsafeURL, ValidationError
from scanner.hostnames import default_public_suffixes
from scanner.prober.politeness import host_key as politeness_key
from scanner.settings import Settings
from scanner.usecases import Context, hooks, inventory, runs, schedules, tokens, triage
from scanner.usecases.triage import Decision
from tests.regressions.harness import Runs, scan_options, serve_target

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def context(database: Any, **settings: Any) -> Context:
    return Context(database, Settings(database_url=database.url, **settings), clock=lambda: NOW)


@pytest.fixture
def ctx(database: Any) -> Context:
    return context(database)


async def audit_log(ctx: Context) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    page = await tokens.list_audit(ctx, limit=100)
    return [(e.actor, e.action, e.target_id, dict(e.detail)) for e in reversed(page.items)]


# -- runs ------------------------------------------------------------------------------


async def test_a_run_is_refused_unless_its_selection_names_endpoints(ctx: Context) -> None:
    a = await inventory.create_endpoint(
        ctx, {"url": "https://a.example/", "tags": ["t"]}, actor="t"
    )
    off = await inventory.create_endpoint(
        ctx, {"url": "https://b.example/", "tags": ["t"], "enabled": False}, actor="t"
    )

    async def refused(selection: RunSelection) -> list[str]:
        with pytest.raises(ValidationError) as exc:
            await runs.start_run(ctx, actor="ana", selection=selection, trigger=RunTrigger.API)
        return [f"{e.field}: {e.message}" for e in exc.value.errors]

    assert await refused(RunSelection(tag="nothing")) == [
        "body: no enabled endpoint matches this selection"
    ]
    assert await refused(RunSelection(endpoint_ids=(a.id, 998, 999))) == [
        "endpoint_ids[1]: endpoint 998 does not exist",
        "endpoint_ids[2]: endpoint 999 does not exist",
    ]
    assert await refused(RunSelection(endpoint_ids=(a.id,), tag="t")) == [
        "endpoint_ids: give either endpoint_ids or tag/owner, not both"
    ]
    page = await runs.list_runs(ctx, limit=10)
    assert page.items == ()  # nothing planned

    run = await runs.start_run(
        ctx, actor="ana", selection=RunSelection(tag="t"), trigger=RunTrigger.MANUAL
    )
    assert (run.status, run.trigger, run.requested_by) == (
        RunStatus.QUEUED,
        RunTrigger.MANUAL,
        "ana",
    )
    assert (run.endpoints_total, run.items_total) == (1, 1)  # the disabled one is left out
    chosen = await runs.start_run(
        ctx, actor="ana", selection=RunSelection(endpoint_ids=(off.id,)), trigger=RunTrigger.API
    )
    assert chosen.endpoints_total == 1  # chosen by id: a disabled endpoint is scanned

    cancelled = await runs.cancel_run(ctx, run.id, actor="bo")
    assert (cancelled.status, cancelled.error) == (RunStatus.CANCELLED, "cancelled by bo")
    with pytest.raises(Conflict, match="already cancelled"):
        await runs.cancel_run(ctx, run.id, actor="bo")
    with pytest.raises(NotFound):
        await runs.cancel_run(ctx, 424242, actor="bo")

    view = await runs.show_run(ctx, chosen.id)
    assert (view.run.id, view.progress.items_remaining, view.progress.live_workers) == (
        chosen.id,
        1,
        0,
    )
    listed = await runs.list_runs(ctx, status=RunStatus.CANCELLED, limit=10)
    assert [r.id for r in listed.items] == [run.id]
    assert sum(listed.items[0].severity_counts.values()) == 0
    assert [(actor, action, target) for actor, action, target, _ in await audit_log(ctx)][2:] == [
        ("ana", "scan.create", str(run.id)),
        ("ana", "scan.create", str(chosen.id)),
        ("bo", "scan.cancel", str(run.id)),
    ]


# -- triage ------------------------------------------------------------------------------


@pytest.fixture
async def scanned(ctx: Context) -> AsyncIterator[Runs]:
    """One endpoint, scanned while it reflects every origin with credentials."""
    async with (
        serve_target() as target,
        Engine(scan_options(), default_public_suffixes()) as engine,
    ):
        endpoint = await inventory.create_endpoint(ctx, {"url": target.url}, actor="t")
        made = Runs(ctx.database, target, engine, endpoint_id=endpoint.id)
        await made.run("allowlist")
        await made.run("reflect")
        yield made


async def test_triage_is_validated_recorded_and_audited_once(ctx: Context, scanned: Runs) -> None:
    page = await triage.list_findings(ctx, FindingQuery(rule_id=RULE), limit=10)
    [finding] = page.items
    with pytest.raises(ValidationError, match="reason: say why"):
        await triage.triage(ctx, finding.id, Decision.SUPPRESS, actor="ana")
    with pytest.raises(ValidationError, match="until: reopening takes no expiry"):
        await triage.triage(ctx, finding.id, Decision.REOPEN, actor="ana", until=NOW)
    with pytest.raises(Conflict, match="not 99"):
        await triage.triage(
            ctx, finding.id, Decision.SUPPRESS, actor="ana", reason="fp", expected_version=99
        )
    until = NOW + timedelta(days=30)
    accepted = await triage.triage(
        ctx, finding.id, Decision.ACCEPT, actor="ana", reason="JIRA-1", until=until
    )
    assert accepted.finding.status.value == "suppressed"
    assert accepted.finding.triage is not None
    assert (accepted.finding.triage.kind.value, accepted.finding.triage.by) == ("accepted", "ana")
    reopened = await triage.triage(ctx, finding.id, Decision.REOPEN, actor="bo")
    assert reopened.finding.triage is None
    history = await triage.finding_history(ctx, finding.id)
    kinds = [e.event.kind.value for e in history.events]
    assert kinds[-2:] == ["finding.suppressed", "finding.unsuppressed"]
    entries = [(a, act, d) for a, act, _, d in await audit_log(ctx) if act.startswith("finding.")]
    assert entries == [
        (
            "ana",
            "finding.accepted",
            {"reason": "JIRA-1", "until": "2027-01-01T12:00:00Z", "event": "finding.suppressed"},
        ),
        ("bo", "finding.open", {"reason": "", "until": None, "event": "finding.unsuppressed"}),
    ]
    regressions = await triage.list_regressions(ctx, limit=10)
    assert regressions.items
    assert all(e.event.is_regression for e in regressions.items)
    of_run = await runs.list_run_events(ctx, scanned.outcomes[-1].run_id, limit=10)
    assert [e.id for e in of_run.items] == [e.id for e in regressions.items]


RULE = "reflect_any_origin_credentials"


# -- hooks -----------------------------------------------------------------------------------


def webhook(url: str = "http://127.0.0.1:9/hook", **fields: Any) -> HookInput:
    return HookInput(name="siem", kind=HookKind.WEBHOOK, url=url, **fields)


async def test_a_hook_to_an_internal_address_is_refused_before_anything_is_stored(
    ctx: Context,
) -> None:
    with pytest.raises(UnsafeURL):
        await hooks.create_hook(ctx, webhook(), actor="ana")
    assert await hooks.list_hooks(ctx) == []
    assert await audit_log(ctx) == []


async def test_hook_changes_are_each_audited_once(database: Any) -> None:
    ctx = context(database, hook_allow_loopback=True)
    made = await hooks.create_hook(ctx, webhook(), actor="ana")
    assert made.secret is not None
    assert made.secret.startswith("whsec_")
    hook = made.hook
    assert (hook.created_by, hook.secret_set) == ("ana", True)
    updated = await hooks.update_hook(ctx, hook.id, {"enabled": False}, actor="ana")
    assert not updated.enabled
    with pytest.raises(Conflict, match="disabled"):
        await hooks.send_test_event(ctx, hook.id, actor="ana")
    await hooks.update_hook(ctx, hook.id, {"enabled": True}, actor="ana")
    delivery = await hooks.send_test_event(ctx, hook.id, actor="bo")
    assert (delivery.status, delivery.event_type) == (DeliveryStatus.QUEUED, "hook.test")
    with pytest.raises(Conflict, match="queued"):
        await hooks.redeliver(ctx, delivery.id, actor="bo")
    rotated = await hooks.rotate_secret(ctx, hook.id, actor="cy")
    assert rotated.secret is not None
    assert rotated.secret != made.secret
    assert rotated.hook.previous_secret_until == NOW + timedelta(
        seconds=ctx.settings.hook_secret_grace_seconds
    )
    page = await hooks.list_deliveries(ctx, hook.id, limit=10)
    assert [d.id for d in page.items] == [delivery.id]
    await hooks.delete_hook(ctx, hook.id, actor="cy")
    with pytest.raises(NotFound):
        await hooks.get_hook(ctx, hook.id)
    entries = [(a, act, d) for a, act, _, d in await audit_log(ctx)]
    assert entries == [
        ("ana", "hook.create", {"name": "siem", "kind": "webhook"}),
        ("ana", "hook.update", {"fields": ["enabled"]}),
        ("ana", "hook.update", {"fields": ["enabled"]}),
        ("bo", "hook.test", {"delivery_id": delivery.id}),
        ("cy", "hook.rotate_secret", {}),
        ("cy", "hook.delete", {}),
    ]


# -- schedules ---------------------------------------------------------------------------------


async def test_schedules_show_their_next_ticks_and_are_audited(ctx: Context) -> None:
    made = await schedules.create_schedule(
        ctx, ScheduleInput(name="spa", cron="0 2 * * *"), actor="ana"
    )
    assert made.next_ticks == tuple(datetime(2026, 12, day, 2, 0, tzinfo=UTC) for day in (3, 4, 5))
    changed = await schedules.update_schedule(
        ctx,
        made.schedule.id,
        ScheduleInput(timezone="Europe/Paris", reset_jitter=True),
        actor="bo",
    )
    assert changed.next_ticks[0] == datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 02:00 in Paris
    with pytest.raises(Exception, match="Mars/Olympus"):
        await schedules.update_schedule(
            ctx, made.schedule.id, ScheduleInput(timezone="Mars/Olympus"), actor="bo"
        )
    listed = await schedules.list_schedules(ctx)
    assert "spa" in [v.schedule.name for v in listed.items]
    await schedules.delete_schedule(ctx, made.schedule.id, actor="cy")
    entries = [(a, act, d.get("fields")) for a, act, _, d in await audit_log(ctx)]
    assert entries == [
        ("ana", "schedule.create", None),
        ("bo", "schedule.update", ["jitter_seconds", "timezone"]),
        ("cy", "schedule.delete", None),
    ]


# -- tokens ---------------------------------------------------------------------------------------


async def test_tokens_and_the_first_admin_token(ctx: Context) -> None:
    unminted = await tokens.first_admin_token(ctx, actor="serve", mint=False)
    assert unminted == tokens.FirstStart(tokens.TokenTable.EMPTY, None)
    start = await tokens.first_admin_token(ctx, actor="serve")
    assert start.table is tokens.TokenTable.EMPTY
    first = start.token
    assert first is not None
    assert first.secret.startswith("csk_")
    again = await tokens.first_admin_token(ctx, actor="serve")  # only on a first start
    assert again == tokens.FirstStart(tokens.TokenTable.ACTIVE, None)
    made = await tokens.create_token(ctx, "ci", ["read"], actor="admin")
    with pytest.raises(ValidationError, match="scopes"):
        await tokens.create_token(ctx, "ci", ["root"], actor="admin")
    revoked = await tokens.revoke_token(ctx, made.token.id, actor="admin")
    assert not revoked.active
    assert [t.name for t in await tokens.list_tokens(ctx)] == ["admin", "ci"]
    assert [(a, act) for a, act, _, _ in await audit_log(ctx)] == [
        ("serve", "token.create"),
        ("admin", "token.create"),
        ("admin", "token.revoke"),
    ]


async def test_no_admin_token_is_minted_when_every_token_was_revoked(ctx: Context) -> None:
    start = await tokens.first_admin_token(ctx, actor="serve")
    assert start.token is not None
    await tokens.revoke_token(ctx, start.token.token.id, actor="admin")

    restart = await tokens.first_admin_token(ctx, actor="serve")

    assert restart == tokens.FirstStart(tokens.TokenTable.ALL_REVOKED, None)
    assert [t.active for t in await tokens.list_tokens(ctx)] == [False]


async def test_work_items_lock_on_the_prober_s_host_key(ctx: Context) -> None:
    # One host key everywhere: the items of a run are grouped (and locked across
    # workers) on exactly the key each worker's politeness slots use.
    urls = ["http://[::1]:8080/a", "http://[0:0::1]:8080/b", "HTTP://127.0.0.1/c"]
    for url in urls:
        await inventory.create_endpoint(ctx, {"url": url}, actor="t")
    run = await runs.start_run(ctx, actor="t", selection=RunSelection(), trigger=RunTrigger.API)
    async with ctx.transaction() as session:
        keys = (
            await session.scalars(select(WorkItemRow.host_key).where(WorkItemRow.run_id == run.id))
        ).all()
    assert sorted(keys) == ["http://127.0.0.1:80", "http://[::1]:8080"]
    assert {politeness_key(u) for u in urls} == set(keys)
