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

The database may fail under any of these steps (a restart, dropped
connections, SQLite's write lock held by an import): every step catches
transient errors (``scanner.db.transient``), waits with capped, jittered
backoff and tries again, logging one line when the outage starts and one when
it ends. Nothing of that costs an item an attempt: an item whose own
transaction failed is retried in place, and a claim whose answer was lost
(the leases committed, the reply did not arrive) is followed by releasing,
refunded, every lease the database says we hold but we do not know of.
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
from scanner.db.transient import Outage, is_transient, retry, wait
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
        self._claims = Outage("worker claim", log)
        self._upkeep = Outage("worker maintenance", log)
        self._beats = Outage("worker heartbeat", log)
        self._items = Outage("work item", log)
        # Runs claimed whose "running" mark has not been committed yet.
        self._unstarted: set[int] = set()
        # A claim failed after it may have committed: leases of ours we may not know.
        self._orphans_possible = False

    def wake(self) -> None:
        """Look for work now (new work was just planned in this process)."""
        self._wake.set()

    @property
    def stale_after(self) -> float:
        """Seconds after which a silent worker is considered gone."""
        return self._settings.worker_stale_after

    async def register(self, stop: asyncio.Event | None = None) -> None:
        """Register in ``workers``; on SQLite refuse a second live worker process (``Conflict``).

        Waits out an unreachable database (until ``stop`` is set).
        """
        if self._registered:
            return
        await retry(self._register, Outage("worker registration", log), stop=stop)

    async def _register(self) -> None:
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
        try:
            await self.register(stop)
        except Exception as exc:
            if stop.is_set() and is_transient(exc):
                return  # stopped before the database ever answered
            raise
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
                try:
                    claimed = await self._claim()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    self._orphans_possible = True
                    await wait(self._claims.failed(exc), stop)
                    continue
                self._claims.recovered()
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
        if self._orphans_possible:
            async with self._db.session() as session, session.begin():
                orphans = await leases.release_unknown_leases(
                    session, self.id, known=list(self._active)
                )
            self._orphans_possible = False
            if orphans:
                log.info("released %d item(s) a claim leased to us whose answer was lost", orphans)
        claimed: list[Lease] = []
        free = self._settings.worker_concurrency - len(self._active)
        if free > 0:
            async with self._db.session() as session, session.begin():
                claimed = await leases.claim_work(
                    session,
                    worker_id=self.id,
                    limit=free,
                    lease_seconds=self._settings.lease_seconds,
                )
            for lease in claimed:
                if lease.previous_holder is not None:
                    with log_context(run_id=lease.run_id):
                        log.info(
                            "work item %s: the lease of worker %s expired; re-claimed "
                            "(attempt %d of %d)",
                            lease.item_id,
                            lease.previous_holder,
                            lease.attempts,
                            lease.max_attempts,
                        )
            self._unstarted.update(c.run_id for c in claimed)
        if self._unstarted:
            # Idempotent, and never allowed to lose the leases just taken: on a
            # failure the runs stay in the set and the next round marks them.
            try:
                async with self._db.session() as session, session.begin():
                    await work.mark_run_started(session, sorted(self._unstarted))
                self._unstarted.clear()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.debug("marking runs started failed; next round: %s", exc)
        return claimed

    async def _maintenance(self) -> None:
        try:
            reaped = await batch.reap_exhausted(self._db)
            if reaped:
                log.warning("%d work item(s) died after their last attempt", reaped)
            async with self._db.session() as session, session.begin():
                await work.sweep_unfinalized(session)
                pruned = await work.prune_dead_workers(
                    session, older_than=self._settings.worker_retention_seconds
                )
            if pruned:
                log.info(
                    "removed %d worker(s) silent for over %.0f s",
                    pruned,
                    self._settings.worker_retention_seconds,
                )
        except Exception as exc:
            if is_transient(exc):
                # Retried at the next maintenance round: a few seconds is backoff enough.
                self._upkeep.failed(exc)
            else:
                log.exception("worker maintenance failed; will retry")
            return
        self._upkeep.recovered()

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
                self._db, engine, lease, public_url=self._settings.public_url, outage=self._items
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
            if is_transient(exc):
                # The database's fault, not the item's: back to the queue, attempt refunded.
                log.warning("work item %s: released after a database error", lease.item_id)
                with contextlib.suppress(Exception):
                    await retry(lambda: self._release_refunded(lease, error), self._items)
            else:
                log.exception("work item %s failed (attempt %d)", lease.item_id, lease.attempts)
                with contextlib.suppress(Exception):
                    # A configuration error fails every attempt alike: no point retrying.
                    final = isinstance(exc, ConfigError)
                    await retry(lambda: self._failed(lease, error, final=final), self._items)
        finally:
            self._active.pop(lease.item_id, None)
            self._wake.set()

    async def _release_refunded(self, lease: Lease, error: str) -> None:
        async with self._db.session() as session, session.begin():
            await leases.release_lease(
                session, lease, error=error, delay_seconds=RETRY_DELAY_S, refund_attempt=True
            )

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
        delay = self._settings.heartbeat_seconds
        while True:
            await asyncio.sleep(delay)
            delay = self._settings.heartbeat_seconds
            try:
                await self._heartbeat()
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("heartbeat failed; leases may expire")
                    continue
                # Sooner than the next beat: the leases expire if this goes on.
                delay = min(delay, self._beats.failed(exc))
                continue
            self._beats.recovered()

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
        # A task cancelled before it ever ran (claimed in the round the stop came in)
        # never reached its own release: give those items back here, attempt refunded.
        unstarted = [lease for lease, _task in self._active.values()]
        self._active.clear()
        for lease in unstarted:
            with contextlib.suppress(Exception):
                await self._after_cancel(lease, "shutdown")
