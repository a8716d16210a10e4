"""Which hosts are not answering at all, so their remaining probes cost nothing.

A nightly run over an organisation meets hosts that never answer: firewalled
(connect timeouts), stalled (read timeouts), trickling a byte a second (total
timeouts). Waiting out every probe's timeout, with retries, costs minutes per
host. The rule here: once ``after`` attempts to one host have timed out, each
started after the host's last answer (so a host still answering other probes
never counts as dead), the host is *unresponsive* for the rest of the scan.
Its queued and future probes are recorded as not sent
(``ProbeError.HOST_UNRESPONSIVE``) and timed-out probes are not retried.

Only timeouts count, and any other outcome is an answer: a refused or reset
connection costs milliseconds, and a host that answers garbage still answers.
"""

from __future__ import annotations

from dataclasses import dataclass

# Hosts remembered; beyond this the oldest entries go (a scan of many hosts
# must not grow without bound). Dead hosts are kept preferentially.
MAX_TRACKED_HOSTS = 20_000


@dataclass(slots=True)
class _State:
    last_answer: float = -1.0  # loop time of the last response from this host
    timeouts: int = 0  # timed-out attempts started after last_answer
    longest: float = 0.0  # the longest of those attempts (seconds), for the detail
    dead: bool = False


class HostHealth:
    """Timeouts and answers per host; ``dead(host)`` once ``after`` timeouts came unanswered."""

    def __init__(self, after: int) -> None:
        self._after = after
        self._hosts: dict[str, _State] = {}

    def answered(self, host: str, now: float) -> None:
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= MAX_TRACKED_HOSTS:
                self._evict()
            state = self._hosts[host] = _State()
        state.last_answer = now
        state.timeouts = 0
        state.longest = 0.0

    def timed_out(self, host: str, started: float, elapsed: float) -> bool:
        """Record a timed-out attempt; True when this made the host unresponsive."""
        if self._after <= 0:
            return False
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= MAX_TRACKED_HOSTS:
                self._evict()
            state = self._hosts[host] = _State()
        if state.dead or started < state.last_answer:
            return False  # the host answered something sent after this one
        state.timeouts += 1
        state.longest = max(state.longest, elapsed)
        if state.timeouts >= self._after:
            state.dead = True
            return True
        return False

    def dead(self, host: str) -> bool:
        state = self._hosts.get(host)
        return state is not None and state.dead

    def detail(self, host: str) -> str:
        """Why ``host``'s probes were not sent, for the observation's ``error_detail``."""
        state = self._hosts.get(host)
        timeouts = state.timeouts if state is not None else self._after
        longest = state.longest if state is not None else 0.0
        return (
            f"not sent: {host} is unresponsive: {timeouts} probes timed out "
            f"(no answer within {longest:.1f} s) and none was answered"
        )

    def _evict(self) -> None:
        for host, state in list(self._hosts.items())[: max(1, len(self._hosts) // 10)]:
            if not state.dead:
                del self._hosts[host]
        if len(self._hosts) >= MAX_TRACKED_HOSTS:
            del self._hosts[next(iter(self._hosts))]
