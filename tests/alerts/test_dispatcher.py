"""The dispatcher against real receivers on 127.0.0.1, over SQLite and PostgreSQL.

Receivers verify what real ones would (Standard Webhooks signatures, GitHub's
``X-Hub-Signature-256``) and process each ``webhook-id`` once, as the spec
tells receivers to. Retry delays are shortened through the dispatcher's
configuration; nothing about HTTP or the database is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from scanner.alerts.dispatcher import Dispatcher, DispatcherConfig
from scanner.alerts.envelope import AlertEvent
from scanner.alerts.outbox import OutgoingEvent, enqueue_events
from scanner.alerts.retry import RetryPolicy
from scanner.alerts.signing import WebhookSecret, verify_github, verify_standard
from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.hooks import DeliveryRecord, DeliveryStatus, HookInput, HookKind
from scanner.ssrf import AddressPolicy

ServeApp = Callable[[web.Application], Awaitable[str]]
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Receiver:
    """A webhook receiver: verifies signatures, processes each webhook-id once.

    ``script`` is consumed one entry per request: an int status, ``"cut"``
    (connection aborted), ``"hang"`` (waits for ``release``), or a tuple
    (status, headers); when empty, 200.
    """

    secret: str = ""
    github: bool = False
    script: list[Any] = field(default_factory=list)
    seen_ids: list[str] = field(default_factory=list)
    processed: dict[str, bytes] = field(default_factory=dict)
    bad_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        self.seen_ids.append(msg_id)
        self.arrived.set()
        step = self.script.pop(0) if self.script else 200
        if step == "cut":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if step == "hang":
            await self.release.wait()
            step = 200
        headers: dict[str, str] = {}
        if isinstance(step, tuple):
            step, headers = step
        if step != 200:
            return web.Response(status=step, headers=headers)
        secret = WebhookSecret.parse(self.secret)
        valid = verify_standard(
            request.headers.get("webhook-signature", ""),
            [secret],
            msg_id,
            request.headers.get("webhook-timestamp", ""),
            body,
            now=int(time.time()),
        )
        if self.github:
            valid = valid and verify_github(
                request.headers.get("X-Hub-Signature-256", ""), secret.github_key, body
            )
        if not valid:
            self.bad_signatures += 1
            return web.Response(status=401)
        self.processed.setdefault(msg_id, body)  # idempotent by webhook-id
        return web.Response(status=200, text="thanks")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


@pytest.fixture
async def make_dispatcher(database: Database) -> AsyncIterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(**changes: Any) -> Dispatcher:
        base: dict[str, Any] = {
            "worker_id": f"test-{len(made)}",
            "timeout": 5.0,
            "retry": RetryPolicy(base=0.05, cap=0.2, give_up_after=timedelta(minutes=5)),
            "concurrency": 4,
            "per_hook": 1,
            "poll_seconds": 0.02,
            "lease_seconds": 30.0,
            "addresses": AddressPolicy(allow_loopback=True),
        }
        base.update(changes)
        dispatcher = Dispatcher(database, DispatcherConfig(**base))
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.stop()


async def _hook(
    database: Database, url: str, receiver: Receiver, *, name: str = "soc", github: bool = False
) -> int:
    async with database.session() as session, session.begin():
        hook, secret = await hooks.create_hook(
            session,
            HookInput(name=name, kind=HookKind.WEBHOOK, url=url, github_signature=github),
            by="test",
            now=NOW,
        )
    assert secret is not None
    receiver.secret = secret
    receiver.github = github
    return hook.id


async def _enqueue(
    database: Database, event: AlertEvent, hook_id: int, count: int = 1
) -> list[int]:
    ids: list[int] = []
    for _ in range(count):
        async with database.session() as session, session.begin():
            ids += await enqueue_events(
                session, [OutgoingEvent(event, None)], now=NOW, hooks=[hook_id]
            )
    return ids


async def _delivery(database: Database, delivery_id: int) -> DeliveryRecord:
    async with database.session() as session, session.begin():
        return await hooks.get_delivery(session, delivery_id)


async def _until(database: Database, delivery_id: int, *statuses: DeliveryStatus) -> DeliveryRecord:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        record = await _delivery(database, delivery_id)
        if record.status in statuses:
            return record
        assert asyncio.get_running_loop().time() < deadline, record
        await asyncio.sleep(0.02)


async def test_signed_delivery_verified_by_the_receiver(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver()
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver, github=True)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    dispatcher = make_dispatcher()
    assert await dispatcher.run_once() == 1
    await dispatcher.drain()
    record = await _delivery(database, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED
    assert receiver.bad_signatures == 0
    assert list(receiver.processed) == [record.msg_id]
    [attempt] = record.attempt_log
    assert attempt.status == 200
    assert attempt.outcome == "success"
    assert attempt.response_excerpt == "thanks"


async def test_down_then_500_then_recovered_is_processed_once(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=["cut", 500])
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    dispatcher = make_dispatcher()
    await dispatcher.start()
    record = await _until(database, delivery_id, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)
    assert record.status is DeliveryStatus.DELIVERED
    assert receiver.seen_ids == [record.msg_id] * 3  # same id on every attempt
    assert list(receiver.processed) == [record.msg_id]
    assert [a.outcome for a in record.attempt_log] == ["retry", "retry", "success"]
    assert record.attempt_log[0].error == "reset"
    assert record.attempt_log[1].status == 500


async def test_stopped_mid_delivery_and_restarted_loses_nothing(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=["hang"])
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    first = make_dispatcher(lease_seconds=1.0)
    await first.start()
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    await first.stop(release=False)  # killed: its lease stays until it expires
    held = await _delivery(database, delivery_id)
    assert held.status is DeliveryStatus.LEASED
    receiver.release.set()

    second = make_dispatcher()
    await second.start()
    record = await _until(database, delivery_id, DeliveryStatus.DELIVERED)
    assert set(receiver.seen_ids) == {record.msg_id}
    assert list(receiver.processed) == [record.msg_id]


async def test_graceful_stop_gives_the_delivery_back_at_once(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=["hang"])
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    first = make_dispatcher(lease_seconds=600.0)
    await first.start()
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    await first.stop()
    assert (await _delivery(database, delivery_id)).status is DeliveryStatus.QUEUED
    receiver.release.set()
    second = make_dispatcher()
    assert await second.run_once() == 1  # no lease to wait out
    await second.drain()
    assert (await _delivery(database, delivery_id)).status is DeliveryStatus.DELIVERED


async def test_410_disables_the_hook_and_stops_deliveries(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=[410])
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    first_id, second_id = await _enqueue(database, make_event(), hook_id, count=2)
    dispatcher = make_dispatcher()
    assert await dispatcher.run_once() == 1  # one per hook at a time
    await dispatcher.drain()
    assert (await _delivery(database, first_id)).status is DeliveryStatus.CANCELLED
    async with database.session() as session, session.begin():
        hook = await hooks.get_hook(session, hook_id)
    assert not hook.enabled
    assert hook.disabled_reason is not None
    assert "410" in hook.disabled_reason
    assert await dispatcher.run_once() == 0
    assert (await _delivery(database, second_id)).status is DeliveryStatus.QUEUED
    assert len(receiver.seen_ids) == 1
    assert await _enqueue(database, make_event(), hook_id) == []  # nothing new is queued


async def test_retry_after_is_honoured(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=[(503, {"Retry-After": "120"})])
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    dispatcher = make_dispatcher()
    assert await dispatcher.run_once() == 1
    await dispatcher.drain()
    record = await _delivery(database, delivery_id)
    assert record.status is DeliveryStatus.QUEUED
    wait = record.next_attempt_at - record.attempt_log[0].started_at
    assert wait >= timedelta(seconds=120)  # not the 0.2 s backoff cap
    assert await dispatcher.run_once() == 0  # not due yet


async def test_gives_up_and_marks_dead(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    receiver = Receiver(script=[500] * 1000)
    url = await serve_app(receiver.app())
    hook_id = await _hook(database, f"{url}/hook", receiver)
    [delivery_id] = await _enqueue(database, make_event(), hook_id)
    retry = RetryPolicy(base=0.05, cap=0.1, give_up_after=timedelta(seconds=0.3))
    dispatcher = make_dispatcher(retry=retry)
    await dispatcher.start()
    record = await _until(database, delivery_id, DeliveryStatus.DEAD)
    assert record.last_error is not None
    assert "gave up" in record.last_error
    assert len(record.attempt_log) == len(receiver.seen_ids) >= 2


async def test_a_slow_hook_does_not_delay_another(
    database: Database, serve_app: ServeApp, make_event: Any, make_dispatcher: Any
) -> None:
    slow = Receiver(script=["hang"] * 5)
    fast = Receiver()
    slow_url = await serve_app(slow.app())
    fast_url = await serve_app(fast.app())
    slow_id = await _hook(database, f"{slow_url}/hook", slow, name="slow")
    fast_id = await _hook(database, f"{fast_url}/hook", fast, name="fast")
    await _enqueue(database, make_event(), slow_id, count=5)  # queued first
    [fast_delivery] = await _enqueue(database, make_event(), fast_id)
    dispatcher = make_dispatcher(concurrency=4, per_hook=2)
    await dispatcher.start()
    record = await _until(database, fast_delivery, DeliveryStatus.DELIVERED)
    assert record.status is DeliveryStatus.DELIVERED
    assert not slow.processed  # still hanging
    assert len(slow.seen_ids) <= 2  # the slow hook never held more than its share
    slow.release.set()
