"""Fixtures over ``tests.regressions.harness``: the switchable target and stored runs of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scanner.db.engine import Database
from tests.regressions.harness import Runs, SwitchableTarget, serve_target, stored_runs


@pytest.fixture
async def target() -> AsyncIterator[SwitchableTarget]:
    """The switchable target on 127.0.0.1 (see the harness)."""
    async with serve_target() as state:
        yield state


@pytest.fixture
async def runs(database: Database, target: SwitchableTarget) -> AsyncIterator[Runs]:
    """Stored runs of the target, each finalised with ``apply_run_diff``."""
    async with stored_runs(database, target) as made:
        yield made
