"""Transient database errors: which they are, how to describe them, how to wait them out.

A database that restarts, a proxy that drops connections, an administrator's
``pg_terminate_backend`` or SQLite's write lock held by a long transaction
all surface as exceptions from whatever statement was running. None of them
is a fault of the work being done, and none should stop a long-running
component: :func:`is_transient` says which exceptions are of that kind,
:func:`describe` turns one into a short line without the SQL statement or its
parameters (a bulk ``INSERT`` can carry thousands), and :class:`Outage`
paces the retries (capped, jittered exponential backoff) and logs one line
when an outage starts and one when it ends, however many attempts fail in
between.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy import exc as sa

from scanner.errors import DatabaseError

T = TypeVar("T")

# SQLSTATE classes of a server that cannot serve now: connection exceptions (08),
# insufficient resources (53, e.g. too many connections), operator intervention
# (57, pg_terminate_backend and shutdowns), transaction rollback (40, deadlock and
# serialization failures, which succeed when retried), internal error (XX).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "XX")
# SQLAlchemy errors that are bugs or bad data, whatever the cause chain holds.
_PERMANENT = (sa.IntegrityError, sa.ProgrammingError, sa.DataError, sa.NotSupportedError)
_DRIVER_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InternalServerError,
    asyncpg.exceptions.InternalClientError,
    sqlite3.OperationalError,  # "database is locked", a vanished file
)
MESSAGE_LIMIT = 300  # characters of a driver message kept in a log line or last_error


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 10:
            continue
        seen.append(current)
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot answer now" (retry later), not a bug."""
    if isinstance(exc, _PERMANENT) and not getattr(exc, "connection_invalidated", False):
        return _transient_sqlstate(exc)
    if isinstance(exc, DatabaseError):
        # Ours: transient only when it wraps a transient cause (a schema that is not
        # current, or a wrong URL, stays wrong however often it is retried).
        return exc.__cause__ is not None and is_transient(exc.__cause__)
    if isinstance(
        exc,
        sa.OperationalError
        | sa.InterfaceError
        | sa.InternalError
        | sa.TimeoutError  # the pool had no connection to give
        | sa.DisconnectionError
        | OSError
        | TimeoutError,
    ):
        return True
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        return any(isinstance(e, _DRIVER_TRANSIENT) for e in _chain(exc)) or _transient_sqlstate(
            exc
        )
    if isinstance(exc, sa.PendingRollbackError):
        return "invalidated" in str(exc) or "reconnect" in str(exc)
    return isinstance(exc, _DRIVER_TRANSIENT) or _transient_sqlstate(exc)


def _transient_sqlstate(exc: BaseException) -> bool:
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and state[:2] in _TRANSIENT_SQLSTATE_CLASSES:
            return True
    return False


def describe(exc: BaseException) -> str:
    """``exc`` as one short line: the driver's error class and message, never SQL or parameters.

    SQLAlchemy's own text appends the statement and its parameters; the
    driver's exception (``orig``) holds only what the server said.
    """
    inner = getattr(exc, "orig", None)
    cause = inner.__cause__ if inner is not None and inner.__cause__ is not None else inner
    shown = cause if cause is not None else exc
    message = str(shown).strip().splitlines()[0] if str(shown).strip() else ""
    if isinstance(exc, sa.StatementError) and shown is exc:
        message = message.split("[SQL:", 1)[0].strip()
    text = f"{type(shown).__name__}: {message}" if message else type(shown).__name__
    return text[:MESSAGE_LIMIT]


class Outage:
    """Backoff and logging for one component's database calls.

    Call :meth:`failed` for each transient error (it logs the first of an
    episode as a warning and returns how long to wait), :meth:`recovered`
    after the next success (one info line, only when there was an episode).
    """

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        base: float = 0.2,
        cap: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.what = what
        self._log = logger
        self._base = base
        self._cap = cap
        # Its own generator: jitter must not touch the global random state.
        self._rng = rng or random.Random()
        self.failures = 0
        self._since = 0.0

    @property
    def ongoing(self) -> bool:
        """Whether the last call failed and nothing has succeeded since."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Count one failure; the seconds to wait before the next attempt."""
        if self.failures == 0:
            self._since = time.monotonic()
            self._log.warning(
                "%s: the database is unavailable (%s); retrying with backoff",
                self.what,
                describe(exc),
            )
        else:
            self._log.debug("%s: still failing (%s)", self.what, describe(exc))
        self.failures += 1
        ceiling: float = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 30))
        # Jitter in [ceiling/2, ceiling]: processes that failed together retry apart.
        return ceiling * self._rng.uniform(0.5, 1.0)

    def recovered(self) -> None:
        """The database answered again: end the episode (one log line)."""
        if self.failures == 0:
            return
        self._log.info(
            "%s: the database is reachable again after %d failed attempt(s) over %.1f s",
            self.what,
            self.failures,
            time.monotonic() - self._since,
        )
        self.failures = 0


async def wait(delay: float, stop: asyncio.Event | None = None) -> bool:
    """Sleep ``delay`` seconds, or less if ``stop`` is set; True when stopped."""
    if stop is None:
        await asyncio.sleep(delay)
        return False
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return False
    return True


async def retry(
    call: Callable[[], Awaitable[T]],
    outage: Outage,
    *,
    stop: asyncio.Event | None = None,
    give_up_after: float | None = None,
) -> T:
    """``await call()`` until it does not fail transiently; other errors propagate at once.

    The last transient error propagates when ``stop`` is set or after
    ``give_up_after`` seconds (None: never give up).
    """
    started = time.monotonic()
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = outage.failed(exc)
            late = give_up_after is not None and time.monotonic() - started + delay > give_up_after
            if late or (stop is not None and stop.is_set()) or await wait(delay, stop):
                raise
            continue
        outage.recovered()
        return result
