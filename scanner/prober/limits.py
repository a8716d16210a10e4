"""The prober's tunables: timeouts, caps on what a target may send, retries, politeness, TLS.

One frozen value, validated on construction, built once from settings and passed
to :class:`scanner.prober.execute.Prober`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scanner import PROJECT_URL, __version__
from scanner.core.headers import DEFAULT_KEPT_HEADER_BYTES
from scanner.errors import ConfigError
from scanner.prober.guard import DEFAULT_TARGET_POLICY
from scanner.ssrf import AddressPolicy

DEFAULT_USER_AGENT = f"cors-scanner/{__version__} (+{PROJECT_URL})"

# Below this a header line cannot even hold a long Access-Control-Allow-Headers
# value; a cap that small would turn ordinary servers into findings.
MIN_FIELD_BYTES = 256
# Chromium refuses a response head over 256 KiB (ERR_RESPONSE_HEADERS_TOO_BIG).
DEFAULT_MAX_HEAD_BYTES = 256 * 1024
# Room for a few ordinary context headers besides the CORS ones.
MIN_KEPT_HEADER_BYTES = 1024
# An endpoint's time budget, in multiples of the total timeout, when not set.
ENDPOINT_BUDGET_TIMEOUTS = 6


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    """How the prober talks to targets. Times are seconds, sizes bytes.

    ``connect_timeout`` covers TCP connect and the TLS handshake;
    ``read_timeout`` is the longest silence between two reads;
    ``total_timeout`` bounds one attempt from connect to the end of the
    response headers (the body is never read);
    ``max_field_bytes`` caps one header line (name and value) and the status
    line; ``max_headers`` caps the number of header lines; ``max_head_bytes``
    caps the whole head; ``kept_header_bytes`` is what an observation keeps of
    a head that got through: CORS, Vary and Location lines whole, every other
    line's name and a cut value (``scanner.core.headers.bounded_headers``), so
    what a batch holds in memory and stores per probe is bounded;
    ``retries`` are extra attempts after a transient failure (connect error,
    reset, timeout), spaced by exponential ``backoff`` with full jitter;
    ``per_host_concurrency``/``global_concurrency`` cap requests in flight,
    a host being scheme + host + port; ``per_host_rate`` caps request starts
    per second per host (None: no cap);
    ``verify_tls`` off accepts any certificate (``--insecure``); ``ca_bundle``
    is a PEM file of CAs trusted in addition to the system store;
    ``trust_env`` routes through HTTP(S)_PROXY unless NO_PROXY says otherwise;
    ``target_policy`` is the address rule every connection is checked against
    (``scanner.prober.guard``: metadata and link-local refused by default);
    ``unresponsive_after`` timed-out attempts to one host, none answered,
    make it unresponsive: its remaining probes are recorded, not sent
    (0: never); ``endpoint_budget`` is how long one endpoint may keep its host
    busy: its attempts' durations added up, divided by
    ``per_host_concurrency`` (the wall time it would take alone, whatever
    other endpoints share the host); past it, its unsent probes are recorded
    as not sent. None: ``ENDPOINT_BUDGET_TIMEOUTS`` x ``total_timeout``.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 20.0
    max_field_bytes: int = 16384
    max_headers: int = 256
    retries: int = 2
    backoff: float = 0.25
    per_host_concurrency: int = 4
    global_concurrency: int = 64
    per_host_rate: float | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    trust_env: bool = True
    target_policy: AddressPolicy = DEFAULT_TARGET_POLICY
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    unresponsive_after: int = 2
    endpoint_budget: float | None = None
    kept_header_bytes: int = DEFAULT_KEPT_HEADER_BYTES

    @property
    def budget(self) -> float:
        """The endpoint budget in seconds (``endpoint_budget`` or its default)."""
        if self.endpoint_budget is not None:
            return self.endpoint_budget
        return ENDPOINT_BUDGET_TIMEOUTS * self.total_timeout

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            _positive_number(name, getattr(self, name))
        _int_at_least("max_field_bytes", self.max_field_bytes, MIN_FIELD_BYTES)
        _int_at_least("max_headers", self.max_headers, 1)
        _int_at_least("max_head_bytes", self.max_head_bytes, self.max_field_bytes)
        _int_at_least("kept_header_bytes", self.kept_header_bytes, MIN_KEPT_HEADER_BYTES)
        _int_at_least("unresponsive_after", self.unresponsive_after, 0)
        if self.endpoint_budget is not None:
            _positive_number("endpoint_budget", self.endpoint_budget)
        _int_at_least("retries", self.retries, 0)
        _int_at_least("per_host_concurrency", self.per_host_concurrency, 1)
        _int_at_least("global_concurrency", self.global_concurrency, 1)
        backoff: object = self.backoff
        if (
            isinstance(backoff, bool)
            or not isinstance(backoff, int | float)
            or not (0 <= backoff < math.inf)
        ):
            raise ConfigError(f"backoff: expected a number of seconds >= 0, got {backoff!r}")
        if self.per_host_rate is not None:
            _positive_number("per_host_rate", self.per_host_rate)
        for name in ("verify_tls", "trust_env"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.ca_bundle is not None and (
            not isinstance(self.ca_bundle, str) or not self.ca_bundle.strip()
        ):
            raise ConfigError(f"ca_bundle: expected a file path, got {self.ca_bundle!r}")
        ua = self.user_agent
        if not isinstance(ua, str) or not ua.strip() or any(c in ua for c in "\r\n\0"):
            # A CR/LF here would let a setting inject header lines into every probe.
            raise ConfigError(
                f"user_agent: expected one non-empty line without CR, LF or NUL, got {ua!r}"
            )


def _positive_number(name: str, value: object) -> None:
    # NaN fails every comparison, so it is refused here too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")


def _int_at_least(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
