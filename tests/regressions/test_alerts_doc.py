"""docs/alerts.md and the code's event vocabulary stay in step.

The page documents every event type with a JSON Schema and an example. This
test reads the page and checks that: the documented types are exactly
``EventType``; every schema is a valid JSON Schema (2020-12) and its example
validates; and the payloads the code really emits validate against the
schema of their type. Real payloads come from stored runs of the switchable
target (new, resolved, not verified, unreachable, reachable, scan.*, triage)
delivered to a webhook that subscribes to every type, and, for the kinds a
short story cannot reach (severity changes, triage expiry, rule changes,
drift alone), from the pure diff rendered by the same ``webhook_payload``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from sqlalchemy import select

import scanner
from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType, webhook_payload
from scanner.core.diff import EndpointSnapshot, diff_run
from scanner.core.lifecycle import FindingStatus as S
from scanner.core.severity import Severity
from scanner.db import findings as store
from scanner.db import hooks
from scanner.db.findings import FindingQuery
from scanner.db.hooks import HookInput, HookKind
from scanner.db.tables import HookDeliveryRow
from scanner.regressions import announce_run
from scanner.settings import Settings
from scanner.usecases import triage
from scanner.usecases.context import Context
from scanner.usecases.hooks import send_test_event
from tests.core.test_diff import KEY, NOW, make_finding, make_tracked
from tests.regressions.harness import Runs, webhook_body

DOC = Path(scanner.__file__).resolve().parents[1] / "docs" / "alerts.md"
SECTION = re.compile(r"^### `([a-z0-9_]+\.[a-z0-9_]+)`", re.MULTILINE)
BLOCK = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
ENVELOPE_ID = "urn:cors-scanner:alert:envelope"


def _page() -> str:
    return DOC.read_text(encoding="utf-8")


def _sections() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """event type -> (schema, example), from each ``### `type` `` section's two JSON blocks."""
    text = _page()
    heads = list(SECTION.finditer(text))
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        blocks = BLOCK.findall(text[head.end() : end])
        assert len(blocks) >= 2, f"{head.group(1)}: a schema and an example"
        assert head.group(1) not in out, f"{head.group(1)} documented twice"
        out[head.group(1)] = (json.loads(blocks[0]), json.loads(blocks[1]))
    return out


def _envelope() -> dict[str, Any]:
    text = _page()
    start = text.index("## The envelope")
    schema: dict[str, Any] = json.loads(BLOCK.findall(text[start:])[0])
    assert schema["$id"] == ENVELOPE_ID
    return schema


def _validators() -> dict[str, jsonschema.protocols.Validator]:
    envelope = _envelope()
    sections = _sections()
    resources = [(ENVELOPE_ID, Resource.from_contents(envelope))]
    resources += [(s["$id"], Resource.from_contents(s)) for s, _ in sections.values()]
    registry: Registry = Registry().with_resources(resources)
    out: dict[str, jsonschema.protocols.Validator] = {}
    for kind, (schema, _) in sections.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        out[kind] = jsonschema.Draft202012Validator(
            schema, registry=registry, format_checker=jsonschema.FormatChecker()
        )
    return out


def test_every_event_type_is_documented_once() -> None:
    assert set(_sections()) == {t.value for t in EventType}


def test_the_schemas_are_valid_and_the_examples_match_them() -> None:
    jsonschema.Draft202012Validator.check_schema(_envelope())
    validators = _validators()
    for kind, (_, example) in _sections().items():
        assert example["type"] == kind
        validators[kind].validate(example)


def test_a_payload_of_another_type_does_not_validate() -> None:
    # The schemas say something: a resolution is not a regression.
    validators = _validators()
    _, example = _sections()["finding.resolved"]
    wrong = {**example, "data": {**example["data"], "is_regression": True}}
    with pytest.raises(jsonschema.ValidationError):
        validators["finding.resolved"].validate(wrong)


# -- payloads the code emits ---------------------------------------------------------


async def _stored_payloads(runs: Runs) -> list[dict[str, Any]]:
    async with runs.database.session() as session, session.begin():
        hook, _ = await hooks.create_hook(
            session,
            HookInput(
                name="everything",
                kind=HookKind.WEBHOOK,
                url="http://127.0.0.1:9/hook",
                event_kinds=tuple(t.value for t in EventType),
            ),
            by="test",
            now=runs.now,
        )
    await runs.run("allowlist")
    await runs.run("reflect")  # finding.new (drift inside)
    await runs.run("down")  # endpoint.unreachable, finding.not_verified
    await runs.run("reflect")  # endpoint.reachable
    async with runs.database.session() as session, session.begin():
        page = await store.list_findings(session, FindingQuery(), limit=10)
    ctx = _context(runs)
    found = page.items[0].id
    await triage.triage(ctx, found, triage.Decision.SUPPRESS, actor="alice", reason="internal")
    await triage.triage(ctx, found, triage.Decision.REOPEN, actor="alice")
    await runs.run("allowlist")  # finding.resolved (drift inside)
    last = runs.outcomes[-1]
    async with runs.database.session() as session, session.begin():
        await announce_run(
            session, last.run_id, failed=False, error=None, outcome=last, base_url="https://c.test"
        )
        await announce_run(
            session,
            last.run_id,
            failed=True,
            error="no endpoint answered: none of the 1 endpoint(s) got an answer",
            outcome=last,
        )
        rows = (
            await session.execute(select(HookDeliveryRow).where(HookDeliveryRow.hook_id == hook.id))
        ).scalars()
        payloads = [webhook_body(r.events) for r in rows]
    return payloads


def _pure_payloads() -> Iterator[dict[str, Any]]:
    high = make_finding(severity=Severity.HIGH)
    medium = make_finding(severity=Severity.MEDIUM)
    cases = [
        # severity raised (drift inside), severity lowered, triage expired
        (
            [make_tracked(high, S.OPEN, severity=Severity.LOW)],
            [EndpointSnapshot(1, True, (high,), headers={KEY: (("vary", "origin"),)})],
            {1: {KEY: ()}},
            False,
        ),
        ([make_tracked(high, S.OPEN)], [EndpointSnapshot(1, True, (medium,))], {}, False),
        (
            [make_tracked(high, S.SUPPRESSED, triage="expired")],
            [EndpointSnapshot(1, True, (high,))],
            {},
            False,
        ),
        # drift alone; a rule change
        ([], [EndpointSnapshot(1, True, headers={KEY: ()})], {1: {KEY: (("vary", "origin"),)}}, False),
        ([], [EndpointSnapshot(1, True, (high,))], {}, True),
    ]  # fmt: skip
    endpoint = EndpointRef(1, "GET", "https://api.acme.test/v1/accounts", "payments", ("pci",))
    for previous, snapshots, headers, ruleset_changed in cases:
        diff = diff_run(
            run_id=4,
            now=NOW,
            previous={f.fingerprint: f for f in previous},
            snapshots=snapshots,
            previous_headers=headers,
            ruleset_changed=ruleset_changed,
        )
        assert diff.events
        for event in diff.events:
            alert = AlertEvent.from_core(
                event,
                endpoint=endpoint,
                base_url="https://c.test",
                finding_id=9 if event.fingerprint else None,
                event_id=77,
            )
            yield json.loads(webhook_payload(alert))


async def test_emitted_payloads_match_the_documented_schemas(runs: Runs) -> None:
    validators = _validators()
    payloads = await _stored_payloads(runs)
    payloads += list(_pure_payloads())
    ctx_payload = await _hook_test_payload(runs)
    payloads.append(ctx_payload)
    seen: set[str] = set()
    for payload in payloads:
        kind = payload["type"]
        seen.add(kind)
        try:
            validators[kind].validate(payload)
        except jsonschema.ValidationError as exc:  # pragma: no cover - the failure message
            raise AssertionError(f"{kind}: {exc.message}\n{json.dumps(payload, indent=2)}") from exc
    # What a story of runs, a triage and a hook test really produce, every one checked.
    assert seen >= {
        "finding.new",
        "finding.resolved",
        "finding.not_verified",
        "finding.severity_raised",
        "finding.severity_lowered",
        "finding.triage_expired",
        "finding.rule_change",
        "finding.suppressed",
        "finding.unsuppressed",
        "regression.header_drift",
        "endpoint.unreachable",
        "endpoint.reachable",
        "scan.completed",
        "scan.failed",
        "hook.test",
    }, seen


def _context(runs: Runs) -> Context:
    settings = Settings(database_url=runs.database.url, hook_allow_loopback=True)
    return Context(runs.database, settings)


async def _hook_test_payload(runs: Runs) -> dict[str, Any]:
    ctx = _context(runs)
    async with runs.database.session() as session, session.begin():
        [hook] = await hooks.list_hooks(session)
    record = await send_test_event(ctx, hook.id, actor="test")
    async with runs.database.session() as session, session.begin():
        row = await session.get(HookDeliveryRow, record.id)
        assert row is not None
        return dict(webhook_body(row.events))
