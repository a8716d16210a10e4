"""The one exception root of cors-scanner.

Exceptions are for our own faults and infrastructure (bad input, bad config,
database down). A hostile or broken *target* is never an exception: the prober
turns it into data on the probe (see ``scanner.core.observation``).

This module imports only the standard library, so the pure core may raise
these too.

    ScannerError
    ├── InputError                 bad user input: a value, a file, a flag
    │   ├── ValidationError        one or more named fields are invalid (lists every one)
    │   ├── InvalidOrigin          not an origin a browser could send or an allowlist could name
    │   ├── InvalidURL             not an absolute http(s) URL we can probe
    │   ├── InvalidPolicy          a policy that contradicts itself or uses an unsafe pattern
    │   ├── InvalidHeader          a request header line that is not `Name: value`
    │   └── UnsafeURL              a URL we refuse to call: not http(s), credentials, internal address
    ├── ConfigError                a setting (flag or CORS_SCANNER_* variable) is wrong
    ├── NotFound                   a stored object does not exist
    ├── Conflict                   a stored object already exists or changed underneath
    └── DatabaseError              the database is unreachable, too old, or not migrated
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ScannerError(Exception):
    """cors-scanner failed."""

    code = "scanner_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class InputError(ScannerError):
    """The input is not valid."""

    code = "invalid_input"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: its name (``tags``, ``allowed_origins``, ``url``) and why."""

    field: str
    message: str


class ValidationError(InputError):
    """Some fields are not valid; ``errors`` names every one, not just the first."""

    code = "validation_failed"

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        listed = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        count = len(self.errors)
        super().__init__(f"{count} invalid field{'s' if count != 1 else ''}: {listed}")


class InvalidOrigin(InputError):
    """Not a valid origin: expected scheme://host[:port] or null."""

    code = "invalid_origin"


class InvalidURL(InputError):
    """Not a valid absolute http(s) URL."""

    code = "invalid_url"


class InvalidPolicy(InputError):
    """The CORS policy is not valid."""

    code = "invalid_policy"


class InvalidHeader(InputError):
    """Not a valid header line: expected 'Name: value'."""

    code = "invalid_header"


class UnsafeURL(InputError):
    """The URL is not safe to call: use http(s), no credentials, and a public address."""

    code = "unsafe_url"


class ConfigError(ScannerError):
    """A setting is not valid."""

    code = "invalid_config"


class NotFound(ScannerError):
    """The object does not exist."""

    code = "not_found"


class Conflict(ScannerError):
    """The object conflicts with one that exists."""

    code = "conflict"


class DatabaseError(ScannerError):
    """The database is unreachable or its schema is not current."""

    code = "database_error"
