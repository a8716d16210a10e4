"""What every use case runs against: the database, the settings, the clock.

Built once per process (the API app at start-up, each CLI command) and passed
to the use cases; tests build their own with a fixed clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.engine import Database
from scanner.db.work import RunBatching
from scanner.settings import Settings


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    """The database, the settings (with what is derived from them) and the clock."""

    database: Database
    settings: Settings
    clock: Callable[[], datetime] = field(default=_utc_now)
    batching: RunBatching = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batching", RunBatching.from_settings(self.settings))

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return self.clock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction: everything a use case writes, its audit entry included, commits
        together or not at all."""
        async with self.database.session() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """One transaction that only reads (never write in it): on SQLite it does not wait
        for, or hold, the write lock, so reads keep answering while a run or an import
        writes (``Database.read_session``)."""
        async with self.database.read_session() as session, session.begin():
            yield session
