"""The worker: claim work items, run them under a heartbeated lease, stop cleanly.

One ``Worker`` per process (``cors-scanner worker``, or inside ``serve``),
running up to ``worker_concurrency`` items at once with one shared
:class:`~scanner.engine.Engine` (one connection pool; per-host concurrency
and rate limits apply across its items). Per-host politeness across workers
comes from the claim (one live lease per host).

Life of the loop: register in ``workers`` (refused on SQLite if another
worker process is live); then, until ``stop`` is set: dead-letter exhausted
items and re-create missing finalize items (every few seconds), claim what
fits, start each item as a task, and wait for a task to end, ``stop``, or the
jittered poll interval. A heartbeat task extends every held lease each
``heartbeat_seconds``; an item whose lease is lost is cancelled (nothing of it
is committed), one whose run was cancelled is abandoned.

On stop (SIGTERM): claim nothing more, cancel in-flight items and release
them back to ``queued`` (the attempt is refunded: the item was not at fault),
deregister, return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable

from scanner.core.variants import PublicSuffixes
from scanner.db import leases, work
from scanner.db.engine import Database
from scanner.db.leases import Lease, WorkKind
from scanner.engine import Engine, ScanOptions
from scanner.errors import ConfigError, ScannerError
from scanner.logs import bind_run_id, log_context
from scanner.settings import Settings
from scanner.worker import batch
from scanner.worker.batch import Outcome

log = logging.getLogger("scanner.worker")

EngineFactory = Callable[[ScanOptions, PublicSuffixes], Engine]
MAINTENANCE_EVERY_S = 5.0  # reaping and finalize sweeps: cheap, but not every poll
RETRY_DELAY_S = 5.0  # a failed item is retried after this long (times its attempts)


class Worker:
    """A pool of concurrently running work items in this process."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        options: ScanOptions,
        suffixes: PublicSuffixes,
        *,
        engine_factory: EngineFactory = Engine,
        worker_id: str | None = None,
    ) -> None:
        self._db = database
        self._settings = settings
        self._options = options
        self._suffixes = suffixes
        self._engine_factory = engine_factory
        self.id = worker_id or str(uuid.uuid4())
        self._active: dict[int, tuple[Lease, asyncio.Task[None]]] = {}
        self._cancel_reason: dict[int, str] = {}
        self._wake = asyncio.Event()
        self._last_maintenance = -MAINTENANCE_EVERY_S
        self._engine_error: ScannerError | None = None
        self._registered = False
        # Its own generator: poll jitter must not touch the global random state.
        self._jitter = random.Random()

    def wake(self) -> None:
        """Look for work now (new work was just planned in this process)."""
        self._wake.set()

    @property
    def stale_after(self) -> float:
        """Seconds after which a silent worker is considered gone."""
        return self._settings.worker_stale_after

    async def register(self) -> None:
        """Register in ``workers``; on SQLite refuse a second live worker process (``Conflict``)."""
        if self._registered:
            return
        async with self._db.session() as session, session.begin():
            dead = await work.register_worker(
                session,
                worker_id=self.id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                stale_after=self.stale_after,
            )
            released = await leases.release_worker_leases(session, dead)
        self._registered = True
        if released:
            log.info("released %d item(s) a previous worker process left leased", released)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then release what is in hand and deregister."""
        await self.register()
        log.info("worker %s started (pid %d)", self.id, os.getpid())
        try:
            async with contextlib.AsyncExitStack() as stack:
                engine: Engine | None = None
                try:
                    engine = await stack.enter_async_context(
                        self._engine_factory(self._options, self._suffixes)
                    )
                except ScannerError as exc:
                    # Our configuration is broken (e.g. a bad CA bundle): every item we
                    # take fails with this error and is dead-lettered, so runs end
                    # "failed" with the reason instead of hanging.
                    log.error("the scan engine cannot start: %s", exc.message)
                    self._engine_error = exc
                heartbeat = asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat")
                try:
                    await self._loop(engine, stop)
                finally:
                    await self._shutdown()
                    heartbeat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heartbeat
        finally:
            with contextlib.suppress(Exception):
                async with self._db.session() as session, session.begin():
                    await work.deregister_worker(session, self.id)
            log.info("worker %s stopped", self.id)

    async def _loop(self, engine: Engine | None, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                if loop.time() - self._last_maintenance >= MAINTENANCE_EVERY_S:
                    self._last_maintenance = loop.time()
                    await self._maintenance()
                claimed = await self._claim()
                for lease in claimed:
                    task = asyncio.create_task(
                        self._work(engine, lease), name=f"item-{lease.item_id}"
                    )
                    self._active[lease.item_id] = (lease, task)
                if claimed and len(self._active) < self._settings.worker_concurrency:
                    continue  # there may be more to claim right away
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                poll = self._settings.poll_seconds * self._jitter.uniform(0.5, 1.5)
                await asyncio.wait(
                    {stopper, waker}, timeout=poll, return_when=asyncio.FIRST_COMPLETED
                )
                waker.cancel()
        finally:
            stopper.cancel()

    async def _claim(self) -> list[Lease]:
        free = self._settings.worker_concurrency - len(self._active)
        if free <= 0:
            return []
        async with self._db.session() as session, session.begin():
            claimed = await leases.claim_work(
                session,
                worker_id=self.id,
                limit=free,
                lease_seconds=self._settings.lease_seconds,
            )
        if claimed:
            async with self._db.session() as session, session.begin():
                await work.mark_run_started(session, sorted({c.run_id for c in claimed}))
        return claimed

    async def _maintenance(self) -> None:
        try:
            reaped = await batch.reap_exhausted(self._db)
            if reaped:
                log.warning("%d work item(s) died after their last attempt", reaped)
            async with self._db.session() as session, session.begin():
                await work.sweep_unfinalized(session)
        except Exception:
            log.exception("worker maintenance failed; will retry")

    async def _work(self, engine: Engine | None, lease: Lease) -> None:
        # Each item runs in its own task (its own context copy): every log line
        # of this item, the engine's and the prober's included, names its run.
        bind_run_id(lease.run_id)
        log.debug(
            "work item %s (%s, attempt %d) started", lease.item_id, lease.kind, lease.attempts
        )
        try:
            if engine is None and lease.kind is WorkKind.PROBE_BATCH:
                assert self._engine_error is not None
                raise self._engine_error
            outcome = await batch.execute(
                self._db, engine, lease, public_url=self._settings.public_url
            )
            if outcome is not Outcome.DONE:
                log.info("work item %s: %s", lease.item_id, outcome.value)
        except asyncio.CancelledError:
            reason = self._cancel_reason.pop(lease.item_id, "shutdown")
            with contextlib.suppress(Exception):
                await asyncio.shield(self._after_cancel(lease, reason))
            raise
        except Exception as exc:
            error = batch.describe(exc)
            log.exception("work item %s failed (attempt %d)", lease.item_id, lease.attempts)
            with contextlib.suppress(Exception):
                # A configuration error fails every attempt alike: no point retrying.
                await self._failed(lease, error, final=isinstance(exc, ConfigError))
        finally:
            self._active.pop(lease.item_id, None)
            self._wake.set()

    async def _after_cancel(self, lease: Lease, reason: str) -> None:
        async with self._db.session() as session, session.begin():
            if reason == "run_closed":
                await leases.abandon_lease(session, lease, reason="the run was cancelled")
            elif reason == "shutdown":
                await leases.release_lease(
                    session, lease, error="released: the worker shut down", refund_attempt=True
                )
            # "lost": someone else holds it now; touch nothing.

    async def _failed(self, lease: Lease, error: str, *, final: bool = False) -> None:
        if final or lease.attempts >= lease.max_attempts:
            await batch.give_up(self._db, lease, error)
            return
        async with self._db.session() as session, session.begin():
            await leases.release_lease(
                session, lease, error=error, delay_seconds=RETRY_DELAY_S * lease.attempts
            )

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            try:
                await self._heartbeat()
            except Exception:
                log.exception("heartbeat failed; leases may expire")

    async def _heartbeat(self) -> None:
        held = [lease for lease, _task in self._active.values()]
        async with self._db.session() as session, session.begin():
            result = await leases.renew_leases(
                session, held, lease_seconds=self._settings.lease_seconds
            )
            await work.worker_heartbeat(session, self.id)
        for item_id in result.lost | result.run_closed:
            entry = self._active.get(item_id)
            if entry is None:
                continue
            reason = "lost" if item_id in result.lost else "run_closed"
            with log_context(run_id=entry[0].run_id):
                log.warning("work item %s: %s; stopping it", item_id, reason)
            self._cancel_reason[item_id] = reason
            entry[1].cancel()

    async def _shutdown(self) -> None:
        tasks = [task for _lease, task in self._active.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
