"""Settings, built once from ``CORS_SCANNER_*`` variables and flags, then passed down.

Nothing reads the environment anywhere else. Every setting has a variable, a
default and a validator whose error names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from scanner.errors import ConfigError

PREFIX = "CORS_SCANNER_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./cors-scanner.db"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("expected a whole number above 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("expected a number above 0")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _optional_str(text: str) -> str | None:
    return text or None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of the service and the scanner. See docs/operations.md."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    # Origins allowed to call our own REST API from a browser (our API's CORS).
    api_cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576  # API request bodies
    max_import_bytes: int = 20_971_520  # import files (CLI and API)
    page_size: int = 50
    max_page_size: int = 500
    # Prober
    timeout: float = 10.0  # total seconds per probe attempt
    connect_timeout: float = 5.0
    retries: int = 2
    concurrency: int = 64  # requests in flight, all hosts
    per_host: int = 4  # requests in flight per host
    per_host_rate: float | None = None  # requests per second per host
    user_agent: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    attacker_domain: str = "attacker.example"
    third_party_hosts: tuple[str, ...] = ()  # empty: the built-in list
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``CORS_SCANNER_<FIELD>`` variables, then apply explicit overrides (flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if name not in env:
                continue
            parser = _PARSERS.get(f.name, str)
            try:
                values[f.name] = parser(env[name])
            except ValueError as exc:
                raise ConfigError(f"{name}={env[name]!r}: {exc}") from None
        settings = cls(**values)
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings


_PARSERS: dict[str, Callable[[str], Any]] = {
    "port": _port,
    "api_cors_origins": _list,
    "max_body_bytes": _positive_int,
    "max_import_bytes": _positive_int,
    "page_size": _positive_int,
    "max_page_size": _positive_int,
    "timeout": _positive_float,
    "connect_timeout": _positive_float,
    "retries": int,
    "concurrency": _positive_int,
    "per_host": _positive_int,
    "per_host_rate": _positive_float,
    "user_agent": _optional_str,
    "ca_bundle": _optional_str,
    "insecure": _bool,
    "third_party_hosts": _list,
}
