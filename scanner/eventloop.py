"""How the scanner's commands run their event loop: uvloop when installed, a quieter GC.

uvloop (libuv under asyncio's API) is the well-kept standard for a faster
event loop: transports, timers and callbacks cost a fraction of the pure-
Python loop's, and a scan is mostly those (about 70 short HTTP exchanges per
endpoint). Where it is not installed (Windows, a build without it) the
standard loop runs the same code.

A scan also allocates a few hundred short-lived objects per probe (requests,
futures, responses, verdicts). CPython's default collector then runs a young
collection every few probes and regularly walks the whole heap: measured,
about an eighth of a scan's CPU. So for the run, everything alive at its start
(imported modules, settings, the public suffix list) is frozen out of
collection, and the young generation may grow to ``GC_YOUNG`` objects before
it is collected. Memory stays bounded: the generations still fill and empty.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GC_YOUNG = 10_000
GC_OLDER = 10


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``uvloop.new_event_loop`` when uvloop is importable (and wanted), else None (asyncio's)."""
    if use_uvloop is False:
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        if use_uvloop:
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool | None = None) -> T:
    """``asyncio.run(main)`` on the fastest loop available, with the collector tuned for it."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, GC_OLDER, GC_OLDER)
    try:
        with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
            return runner.run(main)
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
