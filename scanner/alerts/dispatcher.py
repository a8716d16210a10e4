"""The dispatcher: claims due deliveries from the outbox, sends them, logs and reschedules.

A component of ``serve``/``worker`` (``scanner.runtime``). Each round it
claims what it has room for (``hook_concurrency`` in flight in all,
``hook_concurrency_per_hook`` per hook, so a slow or dead receiver only ever
holds its own slots) under a lease (``scanner.db.leases.claim_deliveries``),
commits, and sends each delivery in its own task through one guarded
session (``build_hook_session``: the SSRF guard checks every connection).
Every attempt is logged; ``retry.decide`` says what next (delivered, retry
at a jittered time or the receiver's ``Retry-After``, dead after
``hook_give_up_seconds``, or 410: disable the hook).

Delivery is at least once, deduplicated by receivers on ``webhook-id`` (the
delivery's ``msg_id``, the same on every attempt). A graceful :meth:`stop`
cancels sends in flight and gives their deliveries back at once; a killed
process leaves leases that expire after ``hook_lease_seconds``, and the next
claim sends those deliveries again with the same id. Nothing is lost: the
outbox row exists from the diff's commit until it is delivered or dead.

Transient database errors (``scanner.db.transient``) stop nothing: the claim
loop backs off (capped, jittered) and logs one line per outage, and a send
whose bookkeeping transaction failed retries it, so an attempt that was made
is logged once the database answers (a delivery's attempts are only its sends).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
from aiohttp.abc import AbstractResolver
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.alerts.envelope import AlertEvent
from scanner.alerts.outbox import OutgoingEvent, enqueue_events, render_request
from scanner.alerts.retry import Action, Classification, Decision, Outcome, RetryPolicy, decide
from scanner.alerts.sender import (
    MAX_EXCERPT_BYTES,
    AttemptResult,
    PreparedRequest,
    build_hook_session,
    deliver,
)
from scanner.db.engine import Database
from scanner.db.findings import expire_triage_decisions
from scanner.db.hooks import (
    AttemptLog,
    ClaimedDelivery,
    DeliveryStatus,
    HookRecord,
    HookSecrets,
    hook_secrets,
)
from scanner.db.leases import (
    claim_deliveries,
    complete_delivery,
    database_time,
    release_deliveries,
)
from scanner.db.transient import Outage, is_transient, retry
from scanner.errors import ScannerError
from scanner.regressions import endpoint_refs
from scanner.settings import Settings
from scanner.ssrf import AddressPolicy

log = logging.getLogger(__name__)

# How long stop() lets the claim loop finish its round before cancelling it.
STOP_GRACE_SECONDS = 30.0

__all__ = ["Dispatcher", "DispatcherConfig"]


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """How a dispatcher works. Seconds throughout."""

    worker_id: str
    timeout: float = 15.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 16
    per_hook: int = 2
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    # How often expired triage decisions are ended between runs (findings back to open).
    sweep_seconds: float = 60.0
    addresses: AddressPolicy = field(default_factory=AddressPolicy)

    @classmethod
    def from_settings(cls, settings: Settings, *, worker_id: str | None = None) -> DispatcherConfig:
        """The configuration ``settings`` describe (``CORS_SCANNER_HOOK_*``)."""
        return cls(
            worker_id=worker_id or f"dispatcher:{socket.gethostname()}:{os.getpid()}",
            timeout=settings.hook_timeout,
            retry=RetryPolicy(
                base=settings.hook_retry_base_seconds,
                cap=settings.hook_retry_cap_seconds,
                give_up_after=timedelta(seconds=settings.hook_give_up_seconds),
            ),
            concurrency=settings.hook_concurrency,
            per_hook=settings.hook_concurrency_per_hook,
            poll_seconds=settings.hook_poll_seconds,
            lease_seconds=max(settings.hook_lease_seconds, settings.hook_timeout * 2),
            addresses=AddressPolicy.for_hooks(
                allow_loopback=settings.hook_allow_loopback,
                allow_private=settings.hook_allow_private,
            ),
        )


def _failure(reason: str) -> AttemptResult:
    """An attempt that never left: the hook's own configuration is broken."""
    return AttemptResult(
        status=None, duration_ms=0.0, classification=Classification(Outcome.FAIL, reason)
    )


def build_request(
    hook: HookRecord, secrets: HookSecrets, claimed: ClaimedDelivery, now: datetime
) -> PreparedRequest:
    """The request for one attempt of ``claimed``: rendered now from its events and ``hook``.

    Re-signed with this attempt's timestamp; the body is the same on every attempt.
    """
    return render_request(hook, secrets, claimed, now)


# Where a delivery goes after each of the retry policy's decisions.
_STATUS_AFTER = {
    Action.DELIVERED: DeliveryStatus.DELIVERED,
    Action.RETRY: DeliveryStatus.QUEUED,
    Action.DEAD: DeliveryStatus.DEAD,
    Action.DISABLE_HOOK: DeliveryStatus.CANCELLED,
}


def attempt_log(result: AttemptResult, started_at: datetime) -> AttemptLog:
    """What the delivery log keeps of one attempt."""
    return AttemptLog(
        started_at=started_at,
        duration_ms=result.duration_ms,
        status=result.status,
        outcome=result.classification.outcome.value,
        reason=result.classification.reason,
        response_excerpt=result.response_excerpt[:MAX_EXCERPT_BYTES],
        error=result.error.value if result.error else None,
        error_detail=result.error_detail or None,
    )


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    result: AttemptResult,
    decision: Decision,
    *,
    started_at: datetime,
    now: datetime,
) -> bool:
    """Store one attempt and the retry policy's decision; False when the lease was lost."""
    delivered = decision.action is Action.DELIVERED
    return await complete_delivery(
        session,
        claimed,
        attempt_log(result, started_at),
        status=_STATUS_AFTER[decision.action],
        next_attempt_at=decision.next_attempt_at,
        last_error=None if delivered else decision.reason,
        disable_hook_reason=decision.reason if decision.action is Action.DISABLE_HOOK else None,
        now=now,
    )


class Dispatcher:
    """Sends the outbox. ``await start()``, later ``await stop()``; or drive :meth:`run_once`."""

    def __init__(
        self,
        database: Database,
        config: DispatcherConfig,
        *,
        rng: random.Random | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.database = database
        self.config = config
        self._rng = rng or random.Random()
        self._resolver = resolver
        self._http: aiohttp.ClientSession | None = None
        self._sending: dict[asyncio.Task[None], ClaimedDelivery] = {}
        self._per_hook: dict[int, int] = {}
        # Sends waiting on their receiver: the only ones stop() may cancel. A task
        # cancelled inside a database transaction can leave SQLite's write lock
        # held by a connection nobody will finish, and the release then waits on it.
        self._on_the_wire: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._claims = Outage("hook dispatcher claim", log)
        self._sweeps = Outage("hook dispatcher triage sweep", log)
        self._sends = Outage("hook dispatcher delivery", log)
        self._stop_event = asyncio.Event()  # set with _stopping: ends retries of sends

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> Dispatcher:
        """The dispatcher ``serve`` and ``worker`` run (``CORS_SCANNER_HOOK_*`` settings)."""
        return cls(database, DispatcherConfig.from_settings(settings))

    # -- lifecycle -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Component protocol (``scanner.runtime``): dispatch until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Run the claim loop in the background."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="hook-dispatcher")

    async def stop(self, *, release: bool = True) -> None:
        """Stop: cancel sends in flight and give their deliveries back (``release``).

        ``release=False`` behaves like a killed process: leases stay until they
        expire (for tests of crash recovery). Only sends waiting on a receiver are
        cancelled; the claim loop and sends inside a database transaction finish
        it first (a transaction is milliseconds, a receiver can take its timeout).
        """
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), STOP_GRACE_SECONDS)
            except TimeoutError:
                self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        pending = dict(self._sending)
        for task in pending:
            if task in self._on_the_wire:
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            if release and pending:
                async with self.database.session() as session, session.begin():
                    await release_deliveries(session, list(pending.values()))
        finally:
            # Even when the release fails (their leases then expire): never leak the session.
            self._sending.clear()
            self._per_hook.clear()
            if self._http is not None:
                await self._http.close()
                self._http = None

    async def drain(self) -> None:
        """Wait for every send in flight to finish (tests)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    # -- work ----------------------------------------------------------------

    async def sweep_triage(self) -> int:
        """End expired triage decisions now; how many (their events go to hooks that want them)."""
        async with self.database.session() as session, session.begin():
            now = await database_time(session)
            events = await expire_triage_decisions(session, now)
            if events:
                refs = await endpoint_refs(session, None, {e.endpoint_id for e in events})
                await enqueue_events(
                    session,
                    [
                        OutgoingEvent(AlertEvent.from_core(e, endpoint=refs[e.endpoint_id]), None)
                        for e in events
                    ],
                    now=now,
                )
        return len(events)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        swept = -self.config.sweep_seconds
        while not self._stopping:
            if loop.time() - swept >= self.config.sweep_seconds:
                swept = loop.time()
                try:
                    await self.sweep_triage()
                except Exception as exc:  # the sweep failing must not stop alerting
                    if is_transient(exc):
                        self._sweeps.failed(exc)  # the next sweep is the retry
                    else:
                        log.exception("hook dispatcher: triage sweep failed")
                else:
                    self._sweeps.recovered()
            pause = self.config.poll_seconds
            try:
                claimed = await self.run_once()
            except Exception as exc:  # a bug must not stop alerting for good
                claimed = 0
                if is_transient(exc):
                    pause = self._claims.failed(exc)
                elif isinstance(exc, ScannerError | OSError):
                    log.warning("hook dispatcher: claim failed: %s", exc)
                else:
                    log.exception("hook dispatcher: claim failed")
            else:
                self._claims.recovered()
            if claimed:
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Claim what there is room for and start sending it; how many were claimed."""
        room = self.config.concurrency - len(self._sending)
        if room <= 0:
            return 0
        async with self.database.session() as session, session.begin():
            claims = await claim_deliveries(
                session,
                worker_id=self.config.worker_id,
                limit=room,
                lease_seconds=self.config.lease_seconds,
                in_flight=self._per_hook,
                max_per_hook=self.config.per_hook,
            )
        for claimed in claims:
            self._per_hook[claimed.hook_id] = self._per_hook.get(claimed.hook_id, 0) + 1
            task = asyncio.create_task(self._send(claimed), name=f"delivery-{claimed.id}")
            self._sending[task] = claimed
            task.add_done_callback(self._done)
        return len(claims)

    def _done(self, task: asyncio.Task[None]) -> None:
        claimed = self._sending.pop(task, None)
        if claimed is not None:
            left = self._per_hook.get(claimed.hook_id, 1) - 1
            if left > 0:
                self._per_hook[claimed.hook_id] = left
            else:
                self._per_hook.pop(claimed.hook_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("hook dispatcher: delivery task failed", exc_info=task.exception())
        self._wake.set()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = build_hook_session(self.config.addresses, resolver=self._resolver)
        return self._http

    async def _send(self, claimed: ClaimedDelivery) -> None:
        async def prepare() -> tuple[datetime, HookRecord, HookSecrets]:
            async with self.database.session() as session, session.begin():
                started_at = await database_time(session)
                hook, secrets = await hook_secrets(session, claimed.hook_id)
            return started_at, hook, secrets

        # Until stop(): the lease expires meanwhile at worst, and the delivery is sent later.
        started_at, hook, secrets = await retry(prepare, self._sends, stop=self._stop_event)
        if self._stopping:
            return  # still leased: stop() gives it back
        loop = asyncio.get_running_loop()
        clock = loop.time()
        try:
            request = build_request(hook, secrets, claimed, started_at)
        except (ScannerError, ValueError) as exc:
            result = _failure(f"cannot build the request: {exc}")
        else:
            task = asyncio.current_task()
            assert task is not None
            self._on_the_wire.add(task)
            try:
                result = await deliver(self._session(), request, timeout=self.config.timeout)
            finally:
                self._on_the_wire.discard(task)
        now = started_at + timedelta(seconds=loop.time() - clock)
        decision = decide(
            result.classification,
            attempt=claimed.attempts + 1,
            first_attempted_at=claimed.first_attempted_at or started_at,
            now=now,
            retry_after=result.retry_after,
            policy=self.config.retry,
            rng=self._rng,
        )

        async def complete() -> bool:
            async with self.database.session() as session, session.begin():
                return await record_attempt(
                    session, claimed, result, decision, started_at=started_at, now=now
                )

        owned = await retry(complete, self._sends, stop=self._stop_event)
        if not owned:
            log.warning("hook dispatcher: lost the lease of delivery %s", claimed.id)
        log.info(
            "hook delivery %s to hook %s: %s (%s)",
            claimed.id,
            hook.id,
            decision.action.value,
            decision.reason,
        )
