"""The outbox holds events; each channel's body is rendered at send time, as it was at enqueue.

Receivers must not notice the change: for the same event a row holding the
event renders byte for byte the body that used to be stored (rows queued
before migration 0011 hold that body and are still sent as is).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from scanner.alerts.dispatcher import Dispatcher, DispatcherConfig, build_request
from scanner.alerts.envelope import (
    AlertEvent,
    EventType,
    event_document,
    event_from_document,
    webhook_payload,
)
from scanner.alerts.outbox import OutgoingEvent, enqueue_events, outbox_message, read_message
from scanner.alerts.pagerduty import PagerDutyTarget, build_pagerduty_request
from scanner.alerts.sender import Channel
from scanner.alerts.slack import build_slack_request
from scanner.alerts.webhook import new_message_id
from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.hooks import ClaimedDelivery, DeliveryStatus, HookInput, HookKind, HookSecrets
from scanner.db.tables import HookDeliveryRow
from scanner.ssrf import AddressPolicy
from tests.alerts.test_dispatcher import Receiver
from tests.alerts.test_filters import hook

MakeEvent = Callable[..., AlertEvent]
ServeApp = Callable[[web.Application], Any]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
SECRET = "whsec_" + "QUJD" * 8
HEADING = "Nightly scan of payments-api"


def _events(make_event: MakeEvent) -> list[AlertEvent]:
    """Events whose documents are easy to get wrong: evidence with floats, unicode, nesting."""
    return [
        make_event(
            before={"status": "open", "ratio": 0.1, "nested": {"k": [1, 2.5, None, True]}},
            after={"summary": "ACAO ‘https://evil.example’ \u2028 ☃", "changed_total": 3},
            summary="x" * 20000,  # cut by the webhook payload, kept whole in the document
            transition=None,
        ),
        make_event(type=EventType.FINDING_RESOLVED, is_regression=False, links=()),
        make_event(
            type=EventType.ENDPOINT_UNREACHABLE,
            fingerprint=None,
            rule_id=None,
            severity=None,
            is_regression=False,
        ),
    ]


def _claimed(events: str | None, body: str | None, msg_id: str) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1,
        hook_id=1,
        lease_token="t",
        msg_id=msg_id,
        events=events,
        body=body,
        event_type="finding.new",
        attempts=0,
        first_attempted_at=None,
    )


def test_an_event_document_round_trips(make_event: MakeEvent) -> None:
    for event in _events(make_event):
        doc = json.loads(json.dumps(event_document(event)))
        assert event_from_document(doc) == event
        assert webhook_payload(event_from_document(doc)) == webhook_payload(event)


def test_rendered_at_send_time_byte_for_byte_as_the_body_stored_before(
    make_event: MakeEvent,
) -> None:
    """The bodies the pre-0011 enqueue stored, sent as is, equal those rendered from events."""
    secrets = HookSecrets(
        secret=SECRET, previous_secret=None, previous_secret_until=None, routing_key=ROUTING_KEY
    )
    webhook = hook(kind=HookKind.WEBHOOK, github_signature=True)
    slack = hook(kind=HookKind.SLACK, url="https://hooks.slack.com/services/T/B/x")
    pagerduty = hook(kind=HookKind.PAGERDUTY, url="https://events.pagerduty.com/v2/enqueue")
    events = _events(make_event)
    msg_id = new_message_id()
    cases: list[tuple[Any, str, str]] = []
    for event in events:
        stored = webhook_payload(event).decode("ascii")
        cases.append((webhook, stored, outbox_message([event], heading=HEADING)))
        request = build_pagerduty_request(PagerDutyTarget(ROUTING_KEY, pagerduty.url), event)
        if request is not None:
            message = json.loads(request.body)
            message.pop("routing_key")
            stored = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
            cases.append((pagerduty, stored, outbox_message([event], heading=HEADING)))
    stored = build_slack_request(slack.url, events, heading=HEADING).body.decode("ascii")
    cases.append((slack, stored, outbox_message(events, heading=HEADING)))
    assert {case[0].kind for case in cases} == set(HookKind)
    for target, body, message in cases:
        before = build_request(target, secrets, _claimed(None, body, msg_id), NOW)
        after = build_request(target, secrets, _claimed(message, None, msg_id), NOW)
        assert after.body == before.body, target.kind
        assert after.headers == before.headers, target.kind  # same webhook-id and signatures
        assert after.url == before.url == target.url
        if target.kind is HookKind.PAGERDUTY:  # the key lives on the hook, added at send time
            assert after.body.startswith(b'{"routing_key":"' + ROUTING_KEY.encode() + b'"')


async def test_a_delivery_row_holds_the_events_not_a_body(
    database: Database, make_event: MakeEvent
) -> None:
    events = _events(make_event)
    async with database.session() as session, session.begin():
        for kind, url, key in (
            (HookKind.WEBHOOK, "https://hooks.example.com/in", None),
            (HookKind.SLACK, "https://hooks.slack.com/services/T/B/x", None),
            (HookKind.PAGERDUTY, None, ROUTING_KEY),
        ):
            await hooks.create_hook(
                session,
                HookInput(name=kind.value, kind=kind, url=url, routing_key=key),
                by="test",
                now=NOW,
            )
        ids = await enqueue_events(
            session, [OutgoingEvent(events[0], None)], now=NOW, heading=HEADING
        )
        rows = await session.execute(sa.select(HookDeliveryRow).where(HookDeliveryRow.id.in_(ids)))
        stored = {r.hook_id: r for r in rows.scalars()}  # one per hook
    assert len(stored) == 3
    for row in stored.values():
        assert row.body is None
        assert row.events is not None
        heading, [event] = read_message(row.events)
        assert heading == HEADING
        assert event == events[0]  # the whole event: its 20 000-character summary too


async def test_a_row_queued_before_the_upgrade_is_still_sent_as_it_was(
    empty_database: Database, serve_app: ServeApp, make_event: MakeEvent
) -> None:
    db = empty_database
    await db.upgrade("0008_run_coverage")
    receiver = Receiver()
    url = await serve_app(receiver.app())
    async with db.session() as session, session.begin():
        created, secret = await hooks.create_hook(
            session,
            HookInput(name="soc", kind=HookKind.WEBHOOK, url=f"{url}/hook"),
            by="test",
            now=NOW,
        )
    assert secret is not None
    receiver.secret = secret
    body = webhook_payload(make_event()).decode("ascii")
    msg_id = new_message_id()
    async with db.engine.begin() as conn:  # the columns of 0008: no events
        await conn.execute(
            sa.insert(HookDeliveryRow).values(
                hook_id=created.id,
                event_type="finding.new",
                msg_id=msg_id,
                body=body,
                status="queued",
                attempts=0,
                next_attempt_at=NOW,
                created_at=NOW,
            )
        )
    await db.upgrade("head")
    dispatcher = Dispatcher(
        db,
        DispatcherConfig(worker_id="test", addresses=AddressPolicy(allow_loopback=True)),
    )
    try:
        assert await dispatcher.run_once() == 1
        await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert receiver.bad_signatures == 0
    assert receiver.processed == {msg_id: body.encode("ascii")}
    async with db.session() as session, session.begin():
        [record] = (await hooks.list_deliveries(session, created.id, limit=5)).items
    assert record.status is DeliveryStatus.DELIVERED


def test_a_hook_kind_is_the_channel_it_delivers_to() -> None:
    assert HookKind is Channel
