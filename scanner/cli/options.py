"""Flags shared by the commands that probe (`scan`, `explain`), and their parsing."""

from __future__ import annotations

import argparse
import re

import scanner
from scanner.core.variants import DEFAULT_THIRD_PARTY_HOSTS, VariantSettings
from scanner.errors import InvalidHeader
from scanner.prober.limits import ProbeLimits
from scanner.settings import Settings

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Headers the prober owns: a user-supplied copy would make the probe lie.
_RESERVED_HEADERS = frozenset(
    {"origin", "host", "content-length", "transfer-encoding", "connection"}
    | {"access-control-request-method", "access-control-request-headers"}
)

DEFAULT_USER_AGENT = (
    f"cors-scanner/{scanner.__version__} (+https://github.com/cors-scanner/cors-scanner)"
)


def parse_header(text: str, *, allow_reserved: bool = False) -> tuple[str, str]:
    """``'Name: value'`` → (name, value), refusing what cannot go on the wire."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _HEADER_NAME.match(name):
        raise InvalidHeader(f"{text!r}: expected 'Name: value' with a valid header name")
    if any(c in value for c in "\r\n\0"):
        raise InvalidHeader(f"{text!r}: a header value cannot contain CR, LF or NUL")
    if not allow_reserved and name.lower() in _RESERVED_HEADERS:
        raise InvalidHeader(f"{name}: the scanner sets this header itself")
    return name, value


def add_probe_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("probing")
    group.add_argument(
        "--timeout", type=float, metavar="S", help="seconds per request (default 10)"
    )
    group.add_argument(
        "--retries", type=int, metavar="N", help="retries of transient failures (default 2)"
    )
    group.add_argument(
        "--concurrency", type=int, metavar="N", help="requests in flight in all (default 64)"
    )
    group.add_argument(
        "--per-host", type=int, metavar="N", help="requests in flight per host (default 4)"
    )
    group.add_argument("--rate", type=float, metavar="R", help="max requests per second per host")
    group.add_argument("--user-agent", metavar="UA", help="User-Agent of every probe")
    group.add_argument("--ca-bundle", metavar="FILE", help="PEM file of extra CAs to trust")
    group.add_argument(
        "--insecure", action="store_true", default=None, help="do not verify TLS certificates"
    )


def probe_limits(args: argparse.Namespace, settings: Settings) -> ProbeLimits:
    """Flags over settings over defaults."""

    def pick(flag: str, setting: object) -> object:
        value = getattr(args, flag, None)
        return setting if value is None else value

    timeout = float(pick("timeout", settings.timeout))  # type: ignore[arg-type]
    return ProbeLimits(
        connect_timeout=min(settings.connect_timeout, timeout),
        read_timeout=timeout,
        total_timeout=timeout,
        retries=int(pick("retries", settings.retries)),  # type: ignore[call-overload]
        global_concurrency=int(pick("concurrency", settings.concurrency)),  # type: ignore[call-overload]
        per_host_concurrency=int(pick("per_host", settings.per_host)),  # type: ignore[call-overload]
        per_host_rate=pick("rate", settings.per_host_rate),  # type: ignore[arg-type]
        user_agent=str(pick("user_agent", settings.user_agent) or DEFAULT_USER_AGENT),
        ca_bundle=pick("ca_bundle", settings.ca_bundle),  # type: ignore[arg-type]
        verify_tls=not bool(pick("insecure", settings.insecure)),
    )


def variant_settings(settings: Settings) -> VariantSettings:
    return VariantSettings(
        attacker_domain=settings.attacker_domain,
        third_party_hosts=settings.third_party_hosts or DEFAULT_THIRD_PARTY_HOSTS,
    )
