"""The vocabulary of hooks, shared by storage and alerting: channels and event types.

``Channel`` is both what a hook is (its kind, stored on the hook) and what a
request is sent to: one enum, so storage and the senders cannot disagree.
``EventType`` is the wire name of every event a hook can hear.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from scanner.core.lifecycle import REGRESSION_KINDS
from scanner.errors import InputError

__all__ = [
    "EVENTS_URL",
    "MAX_ROUTING_KEY",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "MONITORING_TYPES",
    "SECRET_PREFIX",
    "Channel",
    "EventType",
    "check_routing_key",
    "parse_secret",
    "serialize_secret",
]

# PagerDuty's Events API v2 (US service): a PagerDuty hook's default URL.
EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_ROUTING_KEY = 64
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
MIN_SECRET_BYTES = 24  # 192 bits, Standard Webhooks' minimum
MAX_SECRET_BYTES = 64  # 512 bits, its maximum


class Channel(StrEnum):
    """The kinds of receivers we deliver to (a hook's kind)."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


class EventType(StrEnum):
    """Event types on the wire: dot-separated, ``[a-z0-9_]`` (Standard Webhooks).

    Every ``scanner.core.lifecycle.EventKind`` (same value), plus the events
    the service itself raises.
    """

    # From the diff (scanner.core.lifecycle.EventKind).
    FINDING_NEW = "finding.new"
    FINDING_REOPENED = "finding.reopened"
    FINDING_RESOLVED = "finding.resolved"
    SEVERITY_RAISED = "finding.severity_raised"
    SEVERITY_LOWERED = "finding.severity_lowered"
    TRIAGE_EXPIRED = "finding.triage_expired"
    NOT_VERIFIED = "finding.not_verified"
    RULE_CHANGE = "finding.rule_change"
    SUPPRESSED = "finding.suppressed"
    UNSUPPRESSED = "finding.unsuppressed"
    LEGIT_ORIGIN_BLOCKED = "regression.legit_origin_blocked"  # retired: see EventKind
    HEADER_DRIFT = "regression.header_drift"
    ENDPOINT_UNREACHABLE = "endpoint.unreachable"
    ENDPOINT_REACHABLE = "endpoint.reachable"
    # From the service.
    SLA_BREACHED = "finding.sla_breached"
    SCAN_COMPLETED = "scan.completed"
    SCAN_FAILED = "scan.failed"
    HOOK_TEST = "hook.test"

    @property
    def is_regression_kind(self) -> bool:
        """True for the kinds the diff may flag as regressions (``REGRESSION_KINDS``)."""
        return self.value in _REGRESSION_VALUES


_REGRESSION_VALUES = frozenset(kind.value for kind in REGRESSION_KINDS)

# Events about seeing the API at all, not about a finding of some severity:
# a hook's min_severity never holds them back.
MONITORING_TYPES = frozenset(
    {
        EventType.ENDPOINT_UNREACHABLE,
        EventType.ENDPOINT_REACHABLE,
        EventType.SCAN_FAILED,
        EventType.SCAN_COMPLETED,
        EventType.HOOK_TEST,
    }
)


def check_secret_key(key: bytes) -> bytes:
    """``key`` if it is a valid signing key (24 to 64 bytes); InputError otherwise."""
    if not isinstance(key, bytes):
        raise InputError("webhook secret: expected bytes")
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InputError(
            f"webhook secret: expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"got {len(key)}"
        )
    return key


def parse_secret(text: str) -> bytes:
    """``whsec_<base64>`` -> the key's bytes; InputError naming what is wrong.

    Standard base64 with padding, as Standard Webhooks' libraries print it;
    surrounding whitespace (a copy-paste) is ignored.
    """
    if not isinstance(text, str):
        raise InputError("webhook secret: expected a string like 'whsec_...'")
    value = text.strip()
    if not value.startswith(SECRET_PREFIX):
        raise InputError("webhook secret: expected the 'whsec_' prefix followed by base64")
    encoded = value[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InputError("webhook secret: the part after 'whsec_' is not valid base64") from None
    return check_secret_key(key)


def serialize_secret(key: bytes) -> str:
    """A key as users see and paste it: ``whsec_`` + base64. Handle as a secret."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def check_routing_key(key: object) -> str:
    """``key`` if it looks like a PagerDuty integration key; InputError otherwise."""
    if (
        not isinstance(key, str)
        or not key
        or len(key) > MAX_ROUTING_KEY
        or not key.isascii()
        or not key.isalnum()
    ):
        raise InputError("pagerduty: routing_key must be the integration key (32 letters/digits)")
    return key
