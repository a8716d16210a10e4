"""Loopback receivers for the alert senders, and sample events.

Fixtures only, so test modules import nothing from here:

- ``serve_app(app)`` starts an aiohttp application on 127.0.0.1 and returns
  its base URL; ``serve_raw(handler)`` a raw TCP server for receivers that
  misbehave below HTTP (the handler gets the request head and the streams);
- ``hook_session`` is the real guarded session with loopback allowed (our
  receivers live on 127.0.0.1);
- ``make_event(**changes)`` builds an ``AlertEvent`` for a new finding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType, api_links
from scanner.alerts.sender import build_hook_session
from scanner.core.severity import Severity
from scanner.ssrf import AddressPolicy

OCCURRED_AT = datetime(2026, 1, 31, 2, 0, 0, tzinfo=UTC)
BASE_URL = "https://cors.example.com"


@pytest.fixture
async def hook_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The production hook session, with loopback allowed for 127.0.0.1 receivers."""
    async with build_hook_session(AddressPolicy(allow_loopback=True)) as session:
        yield session


def _event(**changes: Any) -> AlertEvent:
    base = AlertEvent(
        type=EventType.FINDING_NEW,
        occurred_at=OCCURRED_AT,
        title="Any origin is reflected with credentials",
        summary="Origin https://evil.example -> ACAO https://evil.example, ACAC true",
        endpoint=EndpointRef(
            id=7,
            method="GET",
            url="https://api.example.com/v1/accounts",
            owner="payments-team",
            tags=("pci", "public-api"),
        ),
        rule_id="reflect_any_origin_credentials",
        severity=Severity.CRITICAL,
        fingerprint="fp1:0123456789abcdef0123456789abcdef",
        is_regression=True,
        scan_id=42,
        finding_id=1001,
        event_id=5001,
        links=api_links(BASE_URL, finding_id=1001, endpoint_id=7, scan_id=42),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def make_event() -> Callable[..., AlertEvent]:
    """``make_event(**changes)``: a critical ``finding.new`` regression, fields replaced."""
    return _event
