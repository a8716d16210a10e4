"""Structured logs: JSON lines for machines, plain lines for people, never a secret.

``configure_logging(settings)`` runs once per process (``scanner.cli.main``):
one handler on the root logger writing to standard error, as JSON objects
(one a line) when stderr is not a terminal or ``log_format`` is ``json``, as
readable lines otherwise. Calling it again replaces that handler, never adds
a second one.

Every line carries the ``request_id`` of the API request and the ``run_id``
of the scan it belongs to, when there is one: both live in context variables
(:func:`log_context`, :func:`bind_request_id`, :func:`bind_run_id`), so a
value set at the top of a request or a scan task follows every coroutine and
task started from there, and no call in between has to pass it along.

Secrets are removed from every record before it is written
(:class:`RedactingFilter`, and the formatters once more on the final text,
tracebacks included): bearer tokens, our API tokens (``csk_``), webhook
secrets (``whsec_``), ``Authorization``/``Cookie``/``Set-Cookie``/``X-Api-Key``
header values in every form a header takes (``Name: value``, ``name=value``,
a ``("Name", "value")`` or ``["Name", "value"]`` pair, bytes pairs, a
``{"name": …, "value": …}`` object, JSON escaped inside a string) and
passwords in URLs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scanner.settings import Settings

__all__ = [
    "REDACTED",
    "ContextFilter",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "bind_request_id",
    "bind_run_id",
    "configure_logging",
    "current_request_id",
    "current_run_id",
    "log_context",
    "redact",
]

REDACTED = "[redacted]"

_REQUEST_ID: ContextVar[str | None] = ContextVar("cors_scanner_request_id", default=None)
_RUN_ID: ContextVar[str | None] = ContextVar("cors_scanner_run_id", default=None)

# Order matters: header values first (they may hold a bearer token), then the
# token shapes on their own, wherever they appear (a repr, a URL, an error).
_SECRET_HEADER = r"(?:proxy-)?authorization|(?:set-)?cookie|x-api-key"  # noqa: S105 - header names
# A quote as it appears in a repr, in JSON, or in JSON inside a string (\\").
_QUOTE = r"""\\*['"]"""
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A header as an object: {"name": "Cookie", "value": "a=b"}.
    (
        re.compile(
            rf"(?i)({_QUOTE}name{_QUOTE}\s*:\s*{_QUOTE}(?:{_SECRET_HEADER}){_QUOTE}\s*,\s*"
            rf"{_QUOTE}value{_QUOTE}\s*:\s*{_QUOTE})[^'\"\\\r\n]+"
        ),
        rf"\1{REDACTED}",
    ),
    # A header as a pair: ["Cookie", "a=b"] (stored probe headers, JSON),
    # ('Authorization', 'Bearer x') and (b'Cookie', b'a=b') (aiohttp's raw headers).
    (
        re.compile(
            rf"(?i)(b?({_QUOTE})(?:{_SECRET_HEADER})\2\s*,\s*b?{_QUOTE})"
            rf"[^'\"\\\r\n]++(?!{_QUOTE}\s*:)"  # not {"name": "cookie", "value": ...}
        ),
        rf"\1{REDACTED}",
    ),
    # "Authorization: Bearer x", "'cookie': 'a=b; c=d'", "Set-Cookie=...", "\"Cookie\": \"x\""
    (
        re.compile(rf"(?i)\b({_SECRET_HEADER})((?:{_QUOTE})?\s*[:=]\s*(?:{_QUOTE})?)[^'\"\r\n]+"),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bcsk_[A-Za-z0-9_-]+"), f"csk_{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@"), rf"\1:{REDACTED}@"),
)

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
)
_STANDARD_ATTRIBUTES |= {"message", "asctime", "taskName", "request_id", "run_id"}


def redact(text: str) -> str:
    """``text`` with every secret shape we know replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def current_request_id() -> str | None:
    """The request id of the API request being handled here, if any."""
    return _REQUEST_ID.get()


def current_run_id() -> str | None:
    """The id of the scan run being executed here, if any."""
    return _RUN_ID.get()


def bind_request_id(request_id: str | None) -> Token[str | None]:
    """Set the request id for this context (and tasks started from it); reset with the token."""
    return _REQUEST_ID.set(request_id)


def bind_run_id(run_id: str | int | None) -> Token[str | None]:
    """Set the run id for this context, e.g. at the top of the task that executes a scan."""
    return _RUN_ID.set(None if run_id is None else str(run_id))


@contextlib.contextmanager
def log_context(
    *, request_id: str | None = None, run_id: str | int | None = None
) -> Iterator[None]:
    """Within the block, log lines carry the given ids (the others stay as they were)."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    if request_id is not None:
        tokens.append((_REQUEST_ID, _REQUEST_ID.set(request_id)))
    if run_id is not None:
        tokens.append((_RUN_ID, _RUN_ID.set(str(run_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Stamps ``request_id`` and ``run_id`` from the context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _REQUEST_ID.get()
        if getattr(record, "run_id", None) is None:
            record.run_id = _RUN_ID.get()
        return True


class RedactingFilter(logging.Filter):
    """Replaces the record's message with its redacted text (arguments merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        return True


def _timestamp(record: logging.LogRecord) -> str:
    # UTC, millisecond precision, ISO 8601 with a Z: sortable and unambiguous.
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, ids, ``extra=`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ("request_id", "run_id"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                doc[key] = _plain(value)
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class TextFormatter(logging.Formatter):
    """``2026-01-01T10:00:00.000Z INFO scanner.api [request=ab12 run=7] message``."""

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{name}={value}"
            for name, value in (
                ("request", getattr(record, "request_id", None)),
                ("run", getattr(record, "run_id", None)),
            )
            if value is not None
        ]
        context = f" [{' '.join(ids)}]" if ids else ""
        line = (
            f"{_timestamp(record)} {record.levelname} {record.name}{context}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    Resolving it late keeps the handler correct when stderr is replaced
    (pytest's capture, a daemon redirecting its streams).
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass  # always the current sys.stderr


_HANDLER_NAME = "cors-scanner"

# Chatty third-party loggers, quieted unless log_level is debug: alembic
# announces every plugin and revision, and aiohttp's access log would repeat
# our own request line without its request id.
_QUIETED = ("alembic", "aiohttp.access")


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Install our handler on the root logger (replacing a previous one); returns it.

    ``stream`` is for tests; by default the current ``sys.stderr``. The format
    follows ``settings.log_format`` (``auto``: JSON unless the stream is a
    terminal), the level ``settings.log_level``.
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    handler: logging.Handler
    if stream is None:
        handler = _StderrHandler()
        target: IO[str] = sys.stderr
    else:
        handler = logging.StreamHandler(stream)
        target = stream
    handler.set_name(_HANDLER_NAME)
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not _is_terminal(target)
    )
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    level = logging.getLevelName(settings.log_level.upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in _QUIETED:
        logging.getLogger(name).setLevel(quiet)
    return handler


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
