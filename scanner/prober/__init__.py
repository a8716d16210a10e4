"""The aiohttp client adapter: probe plans in, observations out, whatever targets do.

Usage: ``async with Prober(limits) as prober: observations = await prober.send_all(plan)``;
one ``Prober`` per scan, so politeness limits span all of its endpoints.
"""

from __future__ import annotations

from scanner.prober.execute import Prober
from scanner.prober.limits import ProbeLimits
from scanner.prober.politeness import Politeness, host_key

__all__ = ["Politeness", "ProbeLimits", "Prober", "host_key"]
