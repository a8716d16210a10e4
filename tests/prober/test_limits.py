"""ProbeLimits refuses nonsense with an error that names the setting."""

from __future__ import annotations

import pytest

from scanner.errors import ConfigError
from scanner.prober import ProbeLimits
from scanner.prober.limits import DEFAULT_USER_AGENT


def test_defaults_are_valid_and_identify_us() -> None:
    limits = ProbeLimits()
    assert limits.user_agent == DEFAULT_USER_AGENT
    assert limits.user_agent.startswith("cors-scanner/")
    assert limits.verify_tls is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connect_timeout", 0),
        ("read_timeout", -1.0),
        ("total_timeout", float("nan")),
        ("total_timeout", float("inf")),
        ("max_field_bytes", 10),
        ("max_headers", 0),
        ("max_headers", 2.5),
        ("retries", -1),
        ("retries", True),
        ("backoff", -0.1),
        ("per_host_concurrency", 0),
        ("global_concurrency", 0),
        ("per_host_rate", 0),
        ("verify_tls", "yes"),
        ("ca_bundle", " "),
        ("user_agent", ""),
        ("user_agent", "scanner\r\nX-Injected: 1"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        ProbeLimits(**{field: value})  # type: ignore[arg-type]


def test_zero_retries_and_zero_backoff_are_allowed() -> None:
    limits = ProbeLimits(retries=0, backoff=0, per_host_rate=0.5)
    assert (limits.retries, limits.backoff, limits.per_host_rate) == (0, 0, 0.5)
