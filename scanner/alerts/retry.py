"""What one delivery attempt's result means, and when (whether) to try again.

Classification (Standard Webhooks "Delivery success and failure", Slack and
PagerDuty docs, see shared/docs/service-design.md §3):

==============================  ===========  ======================================
attempt result                  outcome      why
==============================  ===========  ======================================
2xx (channel's success rule)    SUCCESS      Slack: 200 + body ``ok``; PagerDuty: 202
410 Gone                        DISABLE      the receiver says: stop sending, ever
408, 425, 429, 5xx              RETRY        overloaded, throttling, or a hiccup
timeout, connect, reset, DNS,   RETRY        the network or the receiver may recover
TLS, unparsable response
3xx                             FAIL         never followed (an SSRF hop); fix the URL
other 4xx                       FAIL         the request itself is refused; retrying
                                             the same bytes cannot help
blocked address, invalid URL    FAIL         our SSRF guard or the configuration
2xx not matching the rule       FAIL         not the service we think it is
==============================  ===========  ======================================

Retries use exponential backoff with full jitter, stretched to honour a
``Retry-After`` (seconds or HTTP-date, capped), and stop ``give_up_after``
(3 days) after the first attempt: the delivery is then dead. Pure: the clock
(``now``) and the random source (``rng``) are parameters.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from scanner.errors import ConfigError

__all__ = [
    "Action",
    "Classification",
    "Decision",
    "DeliveryError",
    "Outcome",
    "RetryPolicy",
    "SuccessRule",
    "classify_error",
    "classify_response",
    "decide",
    "next_delay",
    "parse_retry_after",
]

TRANSIENT_STATUSES = frozenset({408, 425, 429})
DEFAULT_RETRY_AFTER_CAP = 3600.0  # a receiver may slow us down, not park a delivery for days
# Longest Retry-After text we parse: a delta-seconds this long is nonsense anyway.
_MAX_RETRY_AFTER_TEXT = 64


class Outcome(StrEnum):
    """What an attempt's result means for its delivery."""

    SUCCESS = "success"  # delivered
    RETRY = "retry"  # transient: try again later
    FAIL = "fail"  # permanent for this delivery: retrying the same request cannot help
    DISABLE = "disable"  # the receiver is gone (410): disable the hook


class SuccessRule(StrEnum):
    """What a channel's receiver answers when it accepted the message."""

    ANY_2XX = "any_2xx"  # generic webhooks (Standard Webhooks)
    SLACK_OK = "slack_ok"  # Slack incoming webhooks: 200 and the body "ok"
    ACCEPTED_202 = "accepted_202"  # PagerDuty Events API v2: 202 Accepted


class DeliveryError(StrEnum):
    """Why an attempt got no HTTP response (set on AttemptResult.error)."""

    TIMEOUT = "timeout"  # no complete answer within the attempt's timeout
    DNS = "dns"  # the host name did not resolve
    CONNECT = "connect"  # refused, unreachable, or connect failed
    TLS = "tls"  # handshake or certificate verification failed
    RESET = "reset"  # the connection broke or closed before a response
    PROTOCOL = "protocol"  # the response was not valid HTTP
    BLOCKED = "blocked"  # the SSRF guard refused the address (scanner.ssrf)
    INVALID_URL = "invalid_url"  # the hook's URL cannot be requested at all
    OTHER = "other"  # anything unexpected (our bug): not retried, to avoid hammering


@dataclass(frozen=True, slots=True)
class Classification:
    """An attempt's outcome and a short reason for the delivery log."""

    outcome: Outcome
    reason: str


def classify_response(status: int, body: bytes, success: SuccessRule) -> Classification:
    """Classify an HTTP response; ``body`` is (the start of) the response body."""
    if 200 <= status <= 299:
        if success is SuccessRule.SLACK_OK and body.strip() != b"ok":
            return Classification(Outcome.FAIL, f"{status} without the body 'ok' Slack sends")
        if success is SuccessRule.ACCEPTED_202 and status != 202:
            return Classification(Outcome.FAIL, f"{status} instead of 202 Accepted")
        return Classification(Outcome.SUCCESS, f"{status}")
    if status == 410:
        return Classification(Outcome.DISABLE, "410 Gone: the receiver asks us to stop")
    if status in TRANSIENT_STATUSES or 500 <= status <= 599:
        return Classification(Outcome.RETRY, f"{status}: transient")
    if 300 <= status <= 399:
        return Classification(Outcome.FAIL, f"{status}: redirects are not followed")
    return Classification(Outcome.FAIL, f"{status}: refused")


_ERROR_OUTCOMES = {
    DeliveryError.TIMEOUT: Outcome.RETRY,
    DeliveryError.DNS: Outcome.RETRY,
    DeliveryError.CONNECT: Outcome.RETRY,
    DeliveryError.TLS: Outcome.RETRY,
    DeliveryError.RESET: Outcome.RETRY,
    DeliveryError.PROTOCOL: Outcome.RETRY,
    DeliveryError.BLOCKED: Outcome.FAIL,
    DeliveryError.INVALID_URL: Outcome.FAIL,
    DeliveryError.OTHER: Outcome.FAIL,
}


def classify_error(error: DeliveryError, detail: str = "") -> Classification:
    """Classify an attempt that got no HTTP response."""
    reason = f"{error.value}: {detail}" if detail else error.value
    return Classification(_ERROR_OUTCOMES[error], reason)


def parse_retry_after(
    value: str | None, *, now: datetime, cap: float = DEFAULT_RETRY_AFTER_CAP
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3), at most ``cap``.

    Accepts delta-seconds (``120``) and an HTTP-date (``Wed, 21 Oct 2015
    07:28:00 GMT``, read relative to ``now``, a timezone-aware datetime; a date
    in the past means 0). None when absent or unparsable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_RETRY_AFTER_TEXT:
        return None
    if text.isascii() and text.isdigit():
        return float(min(int(text), cap))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or an obsolete form: HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), cap)


def next_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter.

    Uniform in [0, min(cap, base * 2**(attempt-1))]. Full jitter spreads the
    retries of many deliveries that failed together (a receiver restarting)
    instead of bringing them back in step.
    """
    exponent = min(max(attempt - 1, 0), 60)  # 2**60 * any sane base is far beyond any cap
    return rng.uniform(0.0, min(cap, base * 2.0**exponent))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff tunables. Seconds, except ``give_up_after``.

    Defaults approximate Standard Webhooks' example schedule (seconds, then
    minutes, then hours, for about 3 days).
    """

    base: float = 5.0
    cap: float = 12 * 3600.0
    give_up_after: timedelta = timedelta(days=3)
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP

    def __post_init__(self) -> None:
        for name in ("base", "cap", "retry_after_cap"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(f"retry {name}: expected a positive number of seconds")
        if not isinstance(self.give_up_after, timedelta) or self.give_up_after <= timedelta(0):
            raise ConfigError("retry give_up_after: expected a positive duration")


class Action(StrEnum):
    """What the dispatcher does with a delivery after an attempt."""

    DELIVERED = "delivered"  # done
    RETRY = "retry"  # schedule another attempt at Decision.next_attempt_at
    DEAD = "dead"  # give up on this delivery (raise hook.delivery_failing)
    DISABLE_HOOK = "disable_hook"  # give up and disable the hook (410)


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step for a delivery, with the reason for the log."""

    action: Action
    reason: str
    next_attempt_at: datetime | None = None


def decide(
    classification: Classification,
    *,
    attempt: int,
    first_attempted_at: datetime,
    now: datetime,
    retry_after: float | None = None,
    policy: RetryPolicy = RetryPolicy(),
    rng: random.Random,
) -> Decision:
    """The next step after attempt number ``attempt`` (1-based) ended ``now``.

    A retry waits the jittered backoff, or ``retry_after`` (capped) if the
    receiver asked for longer; if that would fall after ``first_attempted_at +
    policy.give_up_after`` the delivery is dead instead.
    """
    outcome = classification.outcome
    if outcome is Outcome.SUCCESS:
        return Decision(Action.DELIVERED, classification.reason)
    if outcome is Outcome.DISABLE:
        return Decision(Action.DISABLE_HOOK, classification.reason)
    if outcome is Outcome.FAIL:
        return Decision(Action.DEAD, classification.reason)
    delay = next_delay(attempt, base=policy.base, cap=policy.cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap))
    when = now + timedelta(seconds=delay)
    if when > first_attempted_at + policy.give_up_after:
        days = policy.give_up_after / timedelta(days=1)
        return Decision(
            Action.DEAD, f"gave up after {days:g} days of retries: {classification.reason}"
        )
    return Decision(Action.RETRY, classification.reason, when)
