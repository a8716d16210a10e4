"""Workers: claim leased work items of runs, execute them, finalize runs exactly once."""

from __future__ import annotations

from scanner.worker.loop import Worker

__all__ = ["Worker"]
