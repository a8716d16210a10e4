"""The in-process scan runner: a stored scan in, stored results out.

For one scan row: select its endpoints, resolve their effective policies,
run them through :class:`scanner.engine.Engine`, and store each
:class:`~scanner.core.checks.Assessment` as soon as it arrives, advancing the
scan's progress counters. The scan ends ``completed``; ``cancelled`` when its
task is cancelled (``POST /scans/{id}/cancel`` or server shutdown); ``failed``
with the error when something on our side breaks (the database, a bad
setting). One endpoint that cannot be assessed is recorded as "not assessed"
and the scan goes on: it never stops the others.

``ScanRunner`` owns the background tasks of one process (the API server's)
and cancels them cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.checks import Assessment
from scanner.core.plan import Endpoint
from scanner.core.variants import DEFAULT_THIRD_PARTY_HOSTS, PublicSuffixes, VariantSettings
from scanner.db import scans
from scanner.db.engine import Database
from scanner.db.inventory import EndpointFilter, EndpointRecord, select_endpoints
from scanner.db.policies import EffectivePolicy, effective_policies, effective_policy
from scanner.db.scans import ScanStatus
from scanner.engine import Engine, ScanOptions, Target
from scanner.errors import Conflict, DatabaseError, ScannerError
from scanner.prober.limits import DEFAULT_USER_AGENT, ProbeLimits
from scanner.settings import Settings

log = logging.getLogger("scanner.runner")

SHUTDOWN_GRACE_S = 10.0  # how long shutdown waits for cancelled scans to record their state


def scan_options(settings: Settings) -> ScanOptions:
    """How the service scans, from settings (the same mapping as the ``scan`` command's)."""
    timeout = settings.timeout
    limits = ProbeLimits(
        connect_timeout=min(settings.connect_timeout, timeout),
        read_timeout=timeout,
        total_timeout=timeout,
        retries=settings.retries,
        global_concurrency=settings.concurrency,
        per_host_concurrency=settings.per_host,
        per_host_rate=settings.per_host_rate,
        user_agent=settings.user_agent or DEFAULT_USER_AGENT,
        ca_bundle=settings.ca_bundle,
        verify_tls=not settings.insecure,
    )
    variants = VariantSettings(
        attacker_domain=settings.attacker_domain,
        third_party_hosts=settings.third_party_hosts or DEFAULT_THIRD_PARTY_HOSTS,
    )
    return ScanOptions(limits=limits, variants=variants)


@dataclass(frozen=True, slots=True)
class _Planned:
    """The endpoints of a scan, resolved: what to probe and where results go."""

    targets: tuple[Target, ...]
    ids: dict[tuple[str, str], int]  # (METHOD, url) -> endpoint id
    unresolved: tuple[tuple[EndpointRecord, str], ...]  # no policy could be built: why


EngineFactory = Callable[[ScanOptions, PublicSuffixes], Engine]


class ScanRunner:
    """Runs stored scans as background tasks of this process."""

    def __init__(
        self,
        database: Database,
        options: ScanOptions,
        suffixes: PublicSuffixes,
        *,
        engine_factory: EngineFactory = Engine,
    ) -> None:
        self._db = database
        self._options = options
        self._suffixes = suffixes
        self._engine_factory = engine_factory
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[int, str] = {}
        self._closed = False

    # -- task management -------------------------------------------------------

    def start(self, scan_id: int) -> None:
        """Run the scan in the background (it must be ``queued``)."""
        if self._closed:
            raise RuntimeError("the scan runner is shut down")
        task = asyncio.create_task(self.run(scan_id), name=f"scan-{scan_id}")
        self._tasks[scan_id] = task
        task.add_done_callback(lambda _t: self._forget(scan_id))

    def _forget(self, scan_id: int) -> None:
        self._tasks.pop(scan_id, None)
        self._cancel_reasons.pop(scan_id, None)

    def running(self, scan_id: int) -> bool:
        """Whether this process is running the scan now."""
        return scan_id in self._tasks

    async def cancel(self, scan_id: int, reason: str = "cancelled by request") -> None:
        """Cancel the scan: stop its task if this process runs it, and record ``cancelled``.

        Returns once the row is final. A scan that had already finished keeps
        its state.
        """
        task = self._tasks.get(scan_id)
        if task is not None:
            self._cancel_reasons[scan_id] = reason
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), SHUTDOWN_GRACE_S)
        # Also when the task never got to run (cancelled before its first step)
        # or belongs to no live process: the row must not stay queued/running.
        await self._finish(scan_id, ScanStatus.CANCELLED, reason)

    async def close(self) -> None:
        """Cancel every running scan (each is marked ``cancelled``) and wait for them."""
        self._closed = True
        reason = "the server shut down while the scan was running"
        tasks = list(self._tasks.items())
        for scan_id, task in tasks:
            self._cancel_reasons[scan_id] = reason
            task.cancel()
        if tasks:
            await asyncio.wait([t for _, t in tasks], timeout=SHUTDOWN_GRACE_S)
        for scan_id, _task in tasks:
            with contextlib.suppress(Exception):
                await self._finish(scan_id, ScanStatus.CANCELLED, reason)

    # -- one scan --------------------------------------------------------------

    async def run(self, scan_id: int) -> None:
        """Run one queued scan to its end; never raises except for cancellation."""
        try:
            planned = await self._plan(scan_id)
            if planned is None:
                return  # no longer queued: cancelled before it started
            await self._execute(scan_id, planned)
            await self._finish(scan_id, ScanStatus.COMPLETED)
        except _ScanClosed as closed:
            log.info("scan %s stopped: %s", scan_id, closed)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(scan_id, "cancelled")
            # Record the end even though we are being cancelled: shield the write.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(scan_id, ScanStatus.CANCELLED, reason))
            raise
        except Exception as exc:
            log.exception("scan %s failed", scan_id)
            with contextlib.suppress(Exception):
                await self._finish(scan_id, ScanStatus.FAILED, _describe(exc))

    async def _finish(self, scan_id: int, status: ScanStatus, error: str | None = None) -> None:
        async with self._db.session() as session, session.begin():
            await scans.finish_scan(session, scan_id, status, error=error)

    async def _plan(self, scan_id: int) -> _Planned | None:
        async with self._db.session() as session, session.begin():
            scan = await scans.get_scan(session, scan_id)
            if scan.status is not ScanStatus.QUEUED:
                return None
            selection = scan.selection
            flt = EndpointFilter(tag=selection.tag, owner=selection.owner)
            records = await select_endpoints(session, flt, selection.endpoint_ids)
            policies, unresolved = await _policies(session, records)
            targets: list[Target] = []
            ids: dict[tuple[str, str], int] = {}
            for record in records:
                if record.id not in policies:
                    continue
                endpoint = Endpoint(url=record.url, method=record.method.upper(), name=record.name)
                targets.append(Target(endpoint, policies[record.id].policy))
                ids[(endpoint.method, endpoint.url)] = record.id
            if not await scans.mark_running(session, scan_id, endpoints_total=len(records)):
                return None
        return _Planned(tuple(targets), ids, tuple(unresolved))

    async def _execute(self, scan_id: int, planned: _Planned) -> None:
        for record, reason in planned.unresolved:
            target = Target(Endpoint(url=record.url, method=record.method.upper()))
            await self._save_unassessed(scan_id, record.id, target, reason)
        saved: set[int] = set()
        async with self._engine_factory(self._options, self._suffixes) as engine:
            try:
                async for assessment in engine.scan(planned.targets):
                    key = (assessment.endpoint.method.upper(), assessment.endpoint.url)
                    endpoint_id = planned.ids[key]
                    await self._save(scan_id, endpoint_id, assessment)
                    saved.add(endpoint_id)
            except (asyncio.CancelledError, _ScanClosed):
                raise
            except Exception:
                # A bug hit one endpoint and took the shared iterator down with
                # it: finish the rest one by one, so the bad one is isolated.
                log.exception("scan %s: engine failed; assessing the rest one by one", scan_id)
                await self._one_by_one(scan_id, planned, saved, engine)

    async def _one_by_one(
        self, scan_id: int, planned: _Planned, saved: set[int], engine: Engine
    ) -> None:
        for target in planned.targets:
            endpoint_id = planned.ids[(target.endpoint.method, target.endpoint.url)]
            if endpoint_id in saved:
                continue
            try:
                assessment = await engine.assess(target)
            except Exception as exc:
                log.exception("scan %s: endpoint %s could not be assessed", scan_id, endpoint_id)
                await self._save_unassessed(scan_id, endpoint_id, target, _describe(exc))
                continue
            await self._save(scan_id, endpoint_id, assessment)
            saved.add(endpoint_id)

    async def _save(self, scan_id: int, endpoint_id: int, assessment: Assessment) -> None:
        try:
            async with self._db.session() as session, session.begin():
                await scans.save_assessment(session, scan_id, endpoint_id, assessment)
        except Conflict as exc:
            # The row was finished underneath us (e.g. cancelled by another process).
            raise _ScanClosed(exc.message) from exc
        except DatabaseError:
            raise
        except Exception as exc:
            # Something in this one result cannot be stored: keep the gap visible
            # and go on with the other endpoints.
            log.exception("scan %s: result of endpoint %s not stored", scan_id, endpoint_id)
            target = Target(assessment.endpoint, assessment.policy)
            await self._save_unassessed(scan_id, endpoint_id, target, _describe(exc))

    async def _save_unassessed(
        self, scan_id: int, endpoint_id: int, target: Target, reason: str
    ) -> None:
        try:
            async with self._db.session() as session, session.begin():
                await scans.save_unassessed(
                    session,
                    scan_id,
                    endpoint_id,
                    method=target.endpoint.method,
                    url=target.endpoint.url,
                    reason=reason,
                )
        except Conflict as exc:
            raise _ScanClosed(exc.message) from exc


async def _policies(
    session: AsyncSession, records: list[EndpointRecord]
) -> tuple[dict[int, EffectivePolicy], list[tuple[EndpointRecord, str]]]:
    """Effective policies in one batch; if one cannot be built, isolate it."""
    try:
        return await effective_policies(session, records), []
    except ScannerError:
        log.exception("policy resolution failed for a batch; resolving one by one")
    found: dict[int, EffectivePolicy] = {}
    failed: list[tuple[EndpointRecord, str]] = []
    for record in records:
        try:
            found[record.id] = await effective_policy(session, record)
        except ScannerError as exc:
            failed.append((record, f"its policy cannot be resolved: {exc.message}"))
    return found, failed


class _ScanClosed(Exception):
    """The scan row reached a final state while we were still running it."""


def _describe(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:2000]
