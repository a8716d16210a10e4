"""A ruleset change between two runs is reported as ``finding.rule_change``, never as a regression.

Runs record the ruleset they were judged by (``scanner.core.catalogue.RULES_REVISION``,
stored when results are saved). Here the target changes between runs in both
cases; only the run whose scanner carries a bumped revision reports the
difference as a rule change, with nothing alerted.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

import scanner.db.runs
from scanner.core.catalogue import RULES_REVISION
from scanner.core.lifecycle import EventKind
from scanner.db import findings as store
from scanner.db import hooks
from scanner.db.hooks import HookInput, HookKind
from scanner.db.tables import HookDeliveryRow, RunRow
from tests.regressions.harness import Runs


async def _events(runs: Runs, index: int) -> list[tuple[str, str | None]]:
    async with runs.database.session() as session, session.begin():
        records = await store.events_by_id(session, list(runs.outcomes[index].event_ids))
    return [
        (r.event.kind.value, r.event.transition.value if r.event.transition else None)
        for r in records
    ]


async def _revisions(runs: Runs) -> list[int | None]:
    async with runs.database.session() as session:
        rows = await session.execute(select(RunRow.rules_revision).order_by(RunRow.id))
        return list(rows.scalars())


async def test_a_bumped_ruleset_turns_regressions_into_rule_changes(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with runs.database.session() as session, session.begin():
        await hooks.create_hook(
            session,
            HookInput(name="soc", kind=HookKind.WEBHOOK, url="http://127.0.0.1:9/hook"),
            by="test",
            now=runs.now,
        )
    await runs.run("allowlist")  # baseline
    same_rules = await runs.run("reflect")
    assert same_rules.regression_ids, "same ruleset: a new reflection is a regression"
    assert (EventKind.FINDING_NEW.value, None) in await _events(runs, 1)

    await runs.run("allowlist")  # resolved, same rules again
    monkeypatch.setattr(scanner.db.runs, "RULES_REVISION", RULES_REVISION + 1)
    upgraded = await runs.run("reflect")
    events = await _events(runs, 3)
    assert upgraded.regression_ids == ()
    assert events
    assert {kind for kind, _ in events} == {EventKind.RULE_CHANGE.value}
    assert ("finding.rule_change", "finding.reopened") in events
    async with runs.database.session() as session:
        deliveries = await session.execute(
            select(HookDeliveryRow.event_type).where(HookDeliveryRow.run_id == upgraded.run_id)
        )
        assert "finding.reopened" not in set(deliveries.scalars())
    assert await _revisions(runs) == [RULES_REVISION] * 3 + [RULES_REVISION + 1]

    # The next run, on the new rules too, reports changes as regressions again.
    await runs.run("allowlist")
    again = await runs.run("reflect")
    assert again.regression_ids
