"""Settings, built once from ``CORS_SCANNER_*`` variables and flags, then passed down.

Nothing reads the environment anywhere else. Every setting has a variable, a
default and a validator whose error names the variable. Three conventions from
outside our prefix are read here too, once: ``XDG_DATA_HOME``/``HOME`` (where
the data directory is when ``CORS_SCANNER_DATA_DIR`` is unset) and
``NO_COLOR``/``TERM`` (``CORS_SCANNER_COLOR=auto`` becomes ``never``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from scanner.errors import ConfigError

PREFIX = "CORS_SCANNER_"
# The embedded database: this file in the data directory, unless CORS_SCANNER_DATABASE_URL says.
DATABASE_FILE = "cors-scanner.db"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _networks(text: str) -> tuple[str, ...]:
    items = _list(text)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return items


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


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("expected a number, 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _optional_str(text: str) -> str | None:
    return text or None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of the service and the scanner. See docs/operations.md."""

    # Unset: SQLite, the file DATABASE_FILE in data_dir (from_env fills both in).
    database_url: str | None = None
    # Unset: $XDG_DATA_HOME/cors-scanner, i.e. ~/.local/share/cors-scanner.
    data_dir: str | None = None
    # Where `serve` writes a first admin token (mode 0600) instead of the terminal.
    token_file: str | None = None
    # Severity colour: "auto" (a terminal only; NO_COLOR or TERM=dumb: never), "always", "never".
    color: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8080
    # Origins allowed to call our own REST API from a browser (our API's CORS).
    api_cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576  # API request bodies
    # API connections (scanner.api.connections): seconds to send a whole request head,
    # seconds an idle keep-alive connection stays open, most connections open (0: the
    # open-file limit less a reserve).
    http_header_timeout: float = 10.0
    http_keepalive_timeout: float = 75.0
    http_max_connections: int = 0
    max_import_bytes: int = 20_971_520  # import files (CLI and API), every format
    max_import_rows: int = 100_000  # rows of one import file, every format
    page_size: int = 50
    max_page_size: int = 500
    # Prober
    timeout: float = 10.0  # total seconds per probe attempt
    connect_timeout: float = 5.0
    retries: int = 2
    concurrency: int = 64  # requests in flight, all hosts
    per_host: int = 4  # requests in flight per host
    per_host_rate: float | None = None  # requests per second per host
    # Seconds one endpoint may keep its host busy (None: 6 x timeout); then its
    # unsent probes are recorded as not sent. See ProbeLimits.endpoint_budget.
    endpoint_budget: float | None = None
    # Timed-out attempts to one host, none answered, after which its remaining
    # probes are not sent (host_unresponsive); 0 turns this off.
    unresponsive_after: int = 2
    # What one probe keeps of the response head (memory, storage, evidence): CORS,
    # Vary and Location lines whole, the others by name with a cut value.
    probe_header_bytes: int = 16384
    user_agent: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    attacker_domain: str = "attacker.example"
    third_party_hosts: tuple[str, ...] = ()  # empty: the built-in list
    log_level: str = "info"
    # Logs: "json" (one object a line), "text", or "auto" (json unless stderr is a terminal).
    log_format: str = "auto"
    # Which addresses scan targets may resolve to (scanner.prober.guard).
    target_allow_private: bool = True
    target_allow_loopback: bool = True
    target_allow_link_local: bool = False
    target_allow_metadata: bool = False
    # API requests per minute per token (0: no limit), and how many may come at once.
    api_rate_limit_per_minute: int = 600
    api_rate_limit_burst: int = 600
    # Failed authentications (unknown or revoked tokens) per client address: a minute's
    # refill and the bucket (0: no limit); proxies whose X-Forwarded-For is believed.
    api_auth_failures_per_minute: int = 30
    api_auth_failure_burst: int = 30
    api_trusted_proxies: tuple[str, ...] = ()
    # Runs and workers (issue 4). Lease arithmetic uses the database clock.
    lease_seconds: float = 60.0  # a claimed work item is ours this long without a heartbeat
    heartbeat_seconds: float = 20.0  # lease renewal interval; keep it under lease_seconds / 2
    batch_size: int = 25  # endpoints (all of one host) per work item
    max_attempts: int = 3  # claims of one work item before it is marked dead
    worker_concurrency: int = 4  # work items one worker process runs at once
    poll_seconds: float = 2.0  # idle workers look for work about this often (jittered)
    # Seconds after its last heartbeat that a dead worker stays listed in /api/v1/workers.
    worker_retention_seconds: float = 3600.0
    catch_up_grace: float = 21_600.0  # seconds: a missed tick this recent is still planned
    schedule_jitter: float = 30.0  # seconds: spread schedules so they do not fire together
    schedule_reload_seconds: float = 60.0  # how often schedulers re-read the schedules table
    retention_days: int = 30  # probe details of older finished runs are pruned (0: keep)
    # Alert hooks (issue 5). Hook URLs may not reach internal addresses unless allowed.
    hook_allow_loopback: bool = False
    hook_allow_private: bool = False
    hook_timeout: float = 15.0  # seconds per delivery attempt
    hook_retry_base_seconds: float = 5.0  # first retry within this (full jitter, doubling)
    hook_retry_cap_seconds: float = 43_200.0  # longest wait between two attempts
    hook_give_up_seconds: float = 259_200.0  # a delivery is dead this long after its first attempt
    hook_concurrency: int = 16  # deliveries one dispatcher sends at once, all hooks
    hook_concurrency_per_hook: int = 2  # ... and to one hook: a slow one cannot take every slot
    hook_poll_seconds: float = 1.0  # how often an idle dispatcher looks for due deliveries
    hook_lease_seconds: float = 60.0  # a claimed delivery is ours this long (> hook_timeout)
    hook_secret_grace_seconds: float = 86_400.0  # a rotated secret keeps signing this long
    public_url: str | None = None  # where users reach the API: makes alert links absolute
    # Metrics (issue 6): GET /metrics without a token (default: a read token is needed).
    metrics_public: bool = False
    # Dashboard (issue 14): hours a sign-in lasts (absolute; revoking the token ends it sooner).
    dashboard_session_hours: float = 12.0

    @property
    def worker_stale_after(self) -> float:
        """Seconds of silence after which a worker no longer counts as live (and its ETA share
        is gone): max(one lease, three heartbeats)."""
        return float(max(self.lease_seconds, 3 * self.heartbeat_seconds))

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
        settings = replace(settings, **clean) if clean else settings
        return _resolved(settings, env)


def default_data_dir(environ: Mapping[str, str]) -> str | None:
    """``$XDG_DATA_HOME/cors-scanner`` (an absolute XDG_DATA_HOME only, as the XDG base
    directory specification says), else ``$HOME/.local/share/cors-scanner``; None with
    neither."""
    xdg = environ.get("XDG_DATA_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "cors-scanner")
    home = environ.get("HOME", "")
    if os.path.isabs(home):
        return os.path.join(home, ".local", "share", "cors-scanner")
    return None


def sqlite_url(path: str) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path`` (absolute)."""
    return f"sqlite+aiosqlite:///{path}"


def _resolved(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """Settings with what the environment decides filled in, once, for every command alike:
    the data directory and the database URL in it, and colour under NO_COLOR / TERM=dumb."""
    changes: dict[str, Any] = {}
    data_dir = settings.data_dir
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    else:
        data_dir = default_data_dir(environ)
    changes["data_dir"] = data_dir
    if settings.database_url is None and data_dir is not None:
        changes["database_url"] = sqlite_url(os.path.join(data_dir, DATABASE_FILE))
    if settings.token_file is not None:
        changes["token_file"] = os.path.abspath(os.path.expanduser(settings.token_file))
    # https://no-color.org: any non-empty NO_COLOR means no colour; a dumb terminal has none.
    no_colour = environ.get("NO_COLOR", "") != "" or environ.get("TERM", "") == "dumb"
    if settings.color == "auto" and no_colour:
        changes["color"] = "never"
    return replace(settings, **changes)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": _optional_str,
    "data_dir": _optional_str,
    "token_file": _optional_str,
    "color": _choice("auto", "always", "never"),
    "port": _port,
    "api_cors_origins": _list,
    "max_body_bytes": _positive_int,
    "http_header_timeout": _positive_float,
    "http_keepalive_timeout": _positive_float,
    "http_max_connections": _non_negative_int,
    "max_import_bytes": _positive_int,
    "max_import_rows": _positive_int,
    "page_size": _positive_int,
    "max_page_size": _positive_int,
    "timeout": _positive_float,
    "connect_timeout": _positive_float,
    "retries": int,
    "concurrency": _positive_int,
    "per_host": _positive_int,
    "per_host_rate": _positive_float,
    "endpoint_budget": _positive_float,
    "unresponsive_after": _non_negative_int,
    "probe_header_bytes": _positive_int,
    "user_agent": _optional_str,
    "ca_bundle": _optional_str,
    "insecure": _bool,
    "third_party_hosts": _list,
    "lease_seconds": _positive_float,
    "heartbeat_seconds": _positive_float,
    "batch_size": _positive_int,
    "max_attempts": _positive_int,
    "worker_concurrency": _positive_int,
    "poll_seconds": _positive_float,
    "worker_retention_seconds": _positive_float,
    "catch_up_grace": _positive_float,
    "schedule_jitter": _non_negative_float,
    "schedule_reload_seconds": _positive_float,
    "retention_days": _non_negative_int,
    "log_level": _choice("debug", "info", "warning", "error", "critical"),
    "log_format": _choice("auto", "json", "text"),
    "target_allow_private": _bool,
    "target_allow_loopback": _bool,
    "target_allow_link_local": _bool,
    "target_allow_metadata": _bool,
    "api_rate_limit_per_minute": _non_negative_int,
    "api_rate_limit_burst": _positive_int,
    "api_auth_failures_per_minute": _non_negative_int,
    "api_auth_failure_burst": _positive_int,
    "api_trusted_proxies": _networks,
    "hook_allow_loopback": _bool,
    "hook_allow_private": _bool,
    "hook_timeout": _positive_float,
    "hook_retry_base_seconds": _positive_float,
    "hook_retry_cap_seconds": _positive_float,
    "hook_give_up_seconds": _positive_float,
    "hook_concurrency": _positive_int,
    "hook_concurrency_per_hook": _positive_int,
    "hook_poll_seconds": _positive_float,
    "hook_lease_seconds": _positive_float,
    "hook_secret_grace_seconds": _positive_float,
    "public_url": _optional_str,
    "metrics_public": _bool,
    "dashboard_session_hours": _positive_float,
}
