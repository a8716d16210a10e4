"""Retry classification, Retry-After, backoff with full jitter, and giving up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from scanner.alerts.retry import (
    Action,
    Classification,
    Decision,
    DeliveryError,
    Outcome,
    RetryPolicy,
    SuccessRule,
    classify_error,
    classify_response,
    decide,
    next_delay,
    parse_retry_after,
)
from scanner.errors import ConfigError

NOW = datetime(2026, 1, 31, 2, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "rule", "outcome"),
    [
        (200, b"", SuccessRule.ANY_2XX, Outcome.SUCCESS),
        (202, b"", SuccessRule.ANY_2XX, Outcome.SUCCESS),
        (204, b"", SuccessRule.ANY_2XX, Outcome.SUCCESS),
        (299, b"", SuccessRule.ANY_2XX, Outcome.SUCCESS),
        (200, b"ok", SuccessRule.SLACK_OK, Outcome.SUCCESS),
        (200, b"ok\n", SuccessRule.SLACK_OK, Outcome.SUCCESS),
        (200, b"", SuccessRule.SLACK_OK, Outcome.FAIL),
        (200, b"<html>login</html>", SuccessRule.SLACK_OK, Outcome.FAIL),
        (202, b"{}", SuccessRule.ACCEPTED_202, Outcome.SUCCESS),
        (200, b"{}", SuccessRule.ACCEPTED_202, Outcome.FAIL),
        (301, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (302, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (307, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (308, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (400, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (401, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (403, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (404, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (408, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (410, b"", SuccessRule.ANY_2XX, Outcome.DISABLE),
        (410, b"channel_is_archived", SuccessRule.SLACK_OK, Outcome.DISABLE),
        (413, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (422, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
        (425, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (429, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (429, b"", SuccessRule.ACCEPTED_202, Outcome.RETRY),
        (500, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (502, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (503, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (504, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (599, b"", SuccessRule.ANY_2XX, Outcome.RETRY),
        (100, b"", SuccessRule.ANY_2XX, Outcome.FAIL),
    ],
)
def test_response_classification_table(
    status: int, body: bytes, rule: SuccessRule, outcome: Outcome
) -> None:
    classification = classify_response(status, body, rule)
    assert classification.outcome is outcome
    assert str(status) in classification.reason


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (DeliveryError.TIMEOUT, Outcome.RETRY),
        (DeliveryError.DNS, Outcome.RETRY),
        (DeliveryError.CONNECT, Outcome.RETRY),
        (DeliveryError.TLS, Outcome.RETRY),
        (DeliveryError.RESET, Outcome.RETRY),
        (DeliveryError.PROTOCOL, Outcome.RETRY),
        (DeliveryError.BLOCKED, Outcome.FAIL),
        (DeliveryError.INVALID_URL, Outcome.FAIL),
        (DeliveryError.OTHER, Outcome.FAIL),
    ],
)
def test_error_classification_table(error: DeliveryError, outcome: Outcome) -> None:
    classification = classify_error(error, "detail")
    assert classification.outcome is outcome
    assert classification.reason == f"{error.value}: detail"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("999999999999", 3600.0),  # capped
        ("Sat, 31 Jan 2026 02:02:00 GMT", 120.0),  # IMF-fixdate
        ("Saturday, 31-Jan-26 02:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Sat Jan 31 02:01:00 2026", 60.0),  # asctime
        ("Fri, 30 Jan 2026 02:00:00 GMT", 0.0),  # in the past: now
        ("Sun, 01 Feb 2026 02:00:00 GMT", 3600.0),  # a day later: capped
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("Sat, 31 Jan 2026 99:00:00 GMT", None),
        ("9" * 100, None),
        ("１２", None),  # non-ASCII digits
    ],
)
def test_retry_after_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_cap_is_configurable() -> None:
    assert parse_retry_after("7200", now=NOW, cap=86400) == 7200.0


def test_next_delay_is_full_jitter_under_an_exponential_ceiling() -> None:
    rng = random.Random(1)
    for attempt, ceiling in ((1, 5.0), (2, 10.0), (3, 20.0), (10, 2560.0), (40, 600.0)):
        delays = [next_delay(attempt, base=5.0, cap=600.0, rng=rng) for _ in range(500)]
        assert all(0.0 <= d <= min(ceiling, 600.0) for d in delays)
        # Full jitter spreads over the whole range, not just near the ceiling.
        top = min(ceiling, 600.0)
        assert min(delays) < top * 0.1
        assert max(delays) > top * 0.9
    assert next_delay(10_000, base=5.0, cap=60.0, rng=rng) <= 60.0  # no overflow


def test_decide_success_disable_and_permanent() -> None:
    def first_attempt(outcome: Outcome, reason: str) -> Decision:
        return decide(
            Classification(outcome, reason),
            attempt=1,
            first_attempted_at=NOW,
            now=NOW,
            rng=random.Random(0),
        )

    assert first_attempt(Outcome.SUCCESS, "204").action is Action.DELIVERED
    assert first_attempt(Outcome.DISABLE, "410").action is Action.DISABLE_HOOK
    dead = first_attempt(Outcome.FAIL, "404: refused")
    assert dead.action is Action.DEAD
    assert dead.reason == "404: refused"
    assert dead.next_attempt_at is None


def test_decide_retry_honours_retry_after_when_longer() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0)
    transient = Classification(Outcome.RETRY, "429: transient")
    decision = decide(
        transient,
        attempt=1,
        first_attempted_at=NOW,
        now=NOW,
        retry_after=90.0,
        policy=policy,
        rng=random.Random(0),
    )
    assert decision.action is Action.RETRY
    assert decision.next_attempt_at == NOW + timedelta(seconds=90)
    # A short Retry-After never makes us retry faster than the backoff.
    decision = decide(
        transient,
        attempt=5,
        first_attempted_at=NOW,
        now=NOW,
        retry_after=0.0,
        policy=RetryPolicy(base=100.0, cap=100.0),
        rng=random.Random(3),
    )
    expected = next_delay(5, base=100.0, cap=100.0, rng=random.Random(3))
    assert decision.next_attempt_at == NOW + timedelta(seconds=expected)
    # A huge one is capped.
    decision = decide(
        transient,
        attempt=1,
        first_attempted_at=NOW,
        now=NOW,
        retry_after=10**9,
        policy=policy,
        rng=random.Random(0),
    )
    assert decision.next_attempt_at == NOW + timedelta(seconds=policy.retry_after_cap)


def test_decide_gives_up_after_three_days() -> None:
    transient = Classification(Outcome.RETRY, "503: transient")
    policy = RetryPolicy()
    assert policy.give_up_after == timedelta(days=3)
    still_trying = decide(
        transient,
        attempt=20,
        first_attempted_at=NOW,
        now=NOW + timedelta(days=2),
        policy=policy,
        rng=random.Random(0),
    )
    assert still_trying.action is Action.RETRY
    assert still_trying.next_attempt_at is not None
    assert still_trying.next_attempt_at <= NOW + timedelta(days=3)
    too_late = decide(
        transient,
        attempt=21,
        first_attempted_at=NOW,
        now=NOW + timedelta(days=3, seconds=1),
        policy=policy,
        rng=random.Random(0),
    )
    assert too_late.action is Action.DEAD
    assert "gave up after 3 days" in too_late.reason
    assert "503" in too_late.reason


def test_a_whole_schedule_spans_about_three_days() -> None:
    rng = random.Random(42)
    transient = Classification(Outcome.RETRY, "500: transient")
    now, attempts = NOW, 1
    while True:
        decision = decide(transient, attempt=attempts, first_attempted_at=NOW, now=now, rng=rng)
        if decision.action is Action.DEAD:
            break
        assert decision.next_attempt_at is not None
        now = decision.next_attempt_at
        attempts += 1
    assert NOW + timedelta(days=2) < now <= NOW + timedelta(days=3)
    assert 5 < attempts < 60


@pytest.mark.parametrize(
    "changes",
    [
        {"base": 0},
        {"base": -1.0},
        {"cap": float("inf")},
        {"retry_after_cap": True},
        {"give_up_after": timedelta(0)},
    ],
)
def test_retry_policy_is_validated(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**changes)  # type: ignore[arg-type]
