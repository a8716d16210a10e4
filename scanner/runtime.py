"""The composition root of long-running processes: components that run until stopped.

``serve`` runs the API, the scheduler and a worker; ``worker`` runs only a
worker. Each is a :class:`Component` (``async run(stop)``, returning once
``stop`` is set and its work is released); :func:`run_components` starts them
together, sets ``stop`` on SIGINT/SIGTERM, and if one fails stops the others.
Adding a background part (issue 5's alert dispatcher) = one more component.

Components ride out database outages themselves (``scanner.db.transient``).
Should a transient database error still escape one, it is not a failure of
the process: the component is started again after a capped, jittered
backoff, and the others keep running.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

from scanner.db.transient import Outage, is_transient, wait

log = logging.getLogger("scanner.runtime")


class Component(Protocol):
    """A long-running part of a process."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then clean up and return."""
        ...


async def run_components(
    components: Sequence[Component], stop: asyncio.Event | None = None, *, signals: bool = True
) -> None:
    """Run ``components`` until SIGINT/SIGTERM (or ``stop``); re-raise the first failure."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(_supervised(c, stop), name=type(c).__name__) for c in components]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # one ended (normally only on stop): the others follow
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s failed: %s", task.get_name(), result)
                raise result
        del done
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()


async def _supervised(component: Component, stop: asyncio.Event) -> None:
    """``component.run(stop)``, started again whenever a transient database error ends it."""
    outage = Outage(type(component).__name__, log)
    while True:
        try:
            await component.run(stop)
            return
        except Exception as exc:
            if stop.is_set() or not is_transient(exc):
                raise
            delay = outage.failed(exc)
        if await wait(delay, stop):
            return
