"""How every command prints: tables, records, JSON, severity colour and the scan's progress bar.

One module so that the command line reads the same everywhere:

- a list is an aligned table with a header row (``print_table``), or with
  ``--format json`` the envelope ``{"items": [...], "next_cursor": ...}`` of
  the stable shapes of ``scanner.shapes`` (the API's items, page for page);
- one object is a record of ``key  value`` lines (``print_record``), or its
  shape with ``--format json``;
- values read as a person writes them (:func:`human`): ``yes``/``no``, ``—``
  for nothing, ``tag=api owner=team`` for a mapping, every instant as
  ``2026-12-02 17:15:03 UTC`` — never a Python repr;
- severity is coloured only when the stream is a terminal and the settings
  allow it (``CORS_SCANNER_COLOR``; ``NO_COLOR`` and ``TERM=dumb`` turn it off,
  see ``scanner.settings``), so pipes and files get plain text;
- the scan's progress bar (:class:`ScanProgress`, tqdm) lives on standard
  error, only on a terminal, and is cleared before every block of output and
  drawn again after, so it never garbles what it sits above.

Text that came from outside (a target's header, an error message, an import
row) is escaped before it reaches a terminal: a hostile value cannot move the
cursor or recolour the screen.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from tqdm import tqdm

from scanner.core.severity import Severity
from scanner.settings import Settings

NOTHING = "—"  # an absent value; "-" where the stream cannot encode it
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"

_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
_BARE_WORD = re.compile(r"[^\s\"=]+\Z")

# SGR colours of the severities: the worst ones are the loudest.
_SEVERITY_SGR = {
    Severity.CRITICAL: "1;31",
    Severity.HIGH: "31",
    Severity.MEDIUM: "33",
    Severity.LOW: "36",
    Severity.INFO: "2",
}


# -- values --------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with control characters escaped: nothing from outside drives the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def human_time(moment: datetime | str) -> str:
    """An instant the one way the command line shows it: ``2026-12-02 17:15:03 UTC``."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def human_duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``; ``—`` when unknown."""
    if seconds is None:
        return NOTHING
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def human(value: Any) -> str:
    """A JSON value as a person reads it: no ``True``, ``None`` or ``{'tag': …}``.

    None, an empty list or an empty mapping: ``—``; booleans: ``yes``/``no``;
    ISO 8601 instants: :func:`human_time`; lists: ``a,b`` (``a b, c`` when an item has a
    space); mappings:
    ``key=value`` pairs (values with spaces quoted).
    """
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return human_time(value)
    if isinstance(value, str):
        if _ISO_INSTANT.match(value):
            return human_time(value)
        return printable(value) if value else NOTHING
    if isinstance(value, Mapping):
        if not value:
            return NOTHING
        return " ".join(f"{printable(str(k))}={_pair_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return _joined([human(v) for v in value])
    return printable(str(value))


def _joined(items: list[str]) -> str:
    # "a,b" keeps a table cell one word; items that have spaces read better apart.
    if not items:
        return NOTHING
    return (", " if any(" " in i for i in items) else ",").join(items)


def _pair_value(value: Any) -> str:
    text = human(value)
    return text if _BARE_WORD.match(text) else json.dumps(text, ensure_ascii=False)


# -- colour --------------------------------------------------------------------


def colour_enabled(settings: Settings, stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``: ``always``, ``never``, or (``auto``) only a
    terminal. ``NO_COLOR`` and ``TERM=dumb`` have already made ``auto`` ``never``."""
    if settings.color == "always":
        return True
    if settings.color == "never":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, severity: Severity | str | None, *, colour: bool) -> str:
    """``text`` in the colour of ``severity`` when ``colour``; unchanged otherwise."""
    if not colour or severity is None:
        return text
    try:
        level = severity if isinstance(severity, Severity) else Severity(severity)
    except ValueError:
        return text
    return f"\x1b[{_SEVERITY_SGR[level]}m{text}\x1b[0m"


def severity_painter(settings: Settings, stream: TextIO) -> Callable[[str, Severity], str]:
    """What the scan report colours its severity labels with, for this stream."""
    colour = colour_enabled(settings, stream)
    return lambda text, severity: paint(text, severity, colour=colour)


# -- tables and records -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table: its header, how a row's value is read, how it is aligned.

    ``value`` is a key of the row (a shape's field) or a function of the row;
    what it returns goes through :func:`human`.
    ``severity``: the cell is coloured by its value (on a terminal).
    """

    header: str
    value: str | Callable[[Mapping[str, Any]], Any]
    align: Literal["left", "right"] = "left"
    severity: bool = False

    def cell(self, row: Mapping[str, Any]) -> str:
        return human(row.get(self.value) if isinstance(self.value, str) else self.value(row))


def render_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, colour: bool = False
) -> str:
    """An aligned table: a header row, then one line per row, two spaces between columns,
    numbers right-aligned, no trailing spaces."""
    cells = [[c.cell(row) for c in columns] for row in rows]
    widths = [len(c.header) for c in columns]
    for line in cells:
        widths = [max(w, len(text)) for w, text in zip(widths, line, strict=True)]
    out = [_line([c.header for c in columns], columns, widths)]
    for line in cells:
        painted = [
            paint(_pad(text, w, c.align), text, colour=colour) if c.severity else None
            for text, w, c in zip(line, widths, columns, strict=True)
        ]
        out.append(_line(line, columns, widths, painted))
    return "\n".join(out) + "\n"


def _pad(text: str, width: int, align: str) -> str:
    return text.rjust(width) if align == "right" else text.ljust(width)


def _line(
    texts: Sequence[str],
    columns: Sequence[Column],
    widths: Sequence[int],
    painted: Sequence[str | None] | None = None,
) -> str:
    parts = []
    for i, (text, column, width) in enumerate(zip(texts, columns, widths, strict=True)):
        shown = painted[i] if painted and painted[i] is not None else None
        parts.append(shown if shown is not None else _pad(text, width, column.align))
    return "  ".join(parts).rstrip()


def render_record(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key  value`` lines, keys aligned: one object shown to a person."""
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs)
    lines = []
    for key, value in pairs:
        lines.append(f"{key.ljust(width)}  {human(value)}".rstrip())
    return "\n".join(lines) + "\n"


def record_pairs(doc: Mapping[str, Any], *, skip: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """A shape's fields as record lines, labelled as a person reads them (``last seen at``)."""
    return [(key.replace("_", " "), value) for key, value in doc.items() if key not in skip]


# -- the one way a command writes ----------------------------------------------------


FORMATS = ("table", "json")


def add_format_flag(parser: argparse.ArgumentParser) -> None:
    """``--format table|json``: every list and show command has it, worded the same."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: aligned columns for people (default); json: the API's stable shapes",
    )


class Output:
    """Where one command writes and how: standard output, coloured only on a terminal."""

    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.colour = colour_enabled(settings, self.stream)
        self._nothing_ok = _can_encode(self.stream, NOTHING)

    def write(self, text: str) -> None:
        if not self._nothing_ok:
            text = text.replace(NOTHING, "-")
        self.stream.write(text)
        self.stream.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def json(self, doc: Any) -> None:
        self.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

    def table(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, empty: str
    ) -> None:
        """The rows as a table, or ``empty`` (a sentence saying so) when there are none."""
        if rows:
            self.write(render_table(rows, columns, colour=self.colour))
        else:
            self.line(empty)

    def record(self, pairs: Sequence[tuple[str, Any]]) -> None:
        self.write(render_record(pairs))

    def listing(
        self,
        fmt: str,
        docs: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        *,
        empty: str,
        next_cursor: str | None = None,
    ) -> None:
        """A list command's output: the table (and, when more pages exist, how to get them,
        on stderr) or the JSON envelope ``{"items": [...], "next_cursor": ...}``."""
        if fmt == "json":
            self.json({"items": list(docs), "next_cursor": next_cursor})
            return
        self.table(docs, columns, empty=empty)
        if next_cursor is not None:
            print(f"more: --cursor {next_cursor}  (or --all)", file=sys.stderr)

    def show(self, fmt: str, doc: Mapping[str, Any], pairs: Sequence[tuple[str, Any]]) -> None:
        """A show command's output: ``pairs`` as a record, or ``doc`` as JSON."""
        if fmt == "json":
            self.json(doc)
        else:
            self.record(pairs)


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# -- the scan's progress bar -----------------------------------------------------------


class _Bar(tqdm):  # type: ignore[type-arg]
    """tqdm without its monitor thread, and with a thread lock instead of the default
    multiprocessing one (which would start a semaphore tracker process for a bar)."""

    monitor_interval = 0


_Bar.set_lock(threading.RLock())


class ScanProgress:
    """The scan's progress bar on standard error: ``12/40 endpoints, 3 findings``.

    Drawn only when ``enabled`` (the caller decides: stderr is a terminal and no
    ``--no-progress``). Output written inside :meth:`writing` (report blocks)
    and log records emitted while the bar is shown go around it: the bar is
    cleared first and drawn again after, so a table never starts after a
    ``\\r[###…]``. Leaving the context removes the bar entirely.
    """

    def __init__(self, total: int, *, enabled: bool, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._total = total
        self._findings = 0
        self._bar: _Bar | None = None
        self._handlers: list[tuple[logging.Handler, logging.Handler]] = []

    def __enter__(self) -> ScanProgress:
        if not self._enabled:
            return self
        # A terminal that reports no size (a fresh pseudo-terminal) is taken as 80 x 24:
        # tqdm would otherwise compute room for no bar at all.
        sized = _terminal_size(self._stream) != (0, 0)
        self._bar = _Bar(
            total=self._total,
            file=self._stream,
            unit="endpoint",
            leave=False,
            dynamic_ncols=sized,
            ncols=None if sized else 80,
            nrows=None if sized else 24,
            mininterval=0.1,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} endpoints{postfix} [{elapsed}<{remaining}]",
            postfix="0 findings",
            desc="scanning",
        )
        root = logging.getLogger()
        for handler in list(root.handlers):
            wrapped = _AroundBar(handler, self)
            root.removeHandler(handler)
            root.addHandler(wrapped)
            self._handlers.append((handler, wrapped))
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        for handler, wrapped in self._handlers:
            root.removeHandler(wrapped)
            root.addHandler(handler)
        self._handlers.clear()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def advance(self, findings: int = 0) -> None:
        """One more endpoint judged, with this many findings."""
        if self._bar is None:
            return
        self._findings += findings
        noun = "finding" if self._findings == 1 else "findings"
        self._bar.set_postfix_str(f"{self._findings} {noun}", refresh=False)
        self._bar.update(1)

    @contextmanager
    def writing(self, stream: TextIO | None = None) -> Iterator[None]:
        """Write output inside this: the bar is cleared before and drawn again after."""
        if self._bar is None:
            yield
            return
        with _Bar.external_write_mode(file=stream if stream is not None else sys.stdout):
            yield


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    """(columns, lines) of the terminal ``stream`` writes to; (0, 0) when either is unknown."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return 0, 0
    return (size.columns, size.lines) if size.columns > 0 and size.lines > 0 else (0, 0)


class _AroundBar(logging.Handler):
    """A log handler that clears the progress bar around each record it passes on."""

    def __init__(self, inner: logging.Handler, progress: ScanProgress) -> None:
        super().__init__(level=inner.level)
        self._inner = inner
        self._progress = progress

    def handle(self, record: logging.LogRecord) -> bool:
        with self._progress.writing(sys.stderr):
            return bool(self._inner.handle(record))

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() is used
        self._inner.emit(record)


__all__ = [
    "FORMATS",
    "NOTHING",
    "Column",
    "Output",
    "ScanProgress",
    "add_format_flag",
    "colour_enabled",
    "human",
    "human_duration",
    "human_time",
    "paint",
    "printable",
    "record_pairs",
    "render_record",
    "render_table",
    "severity_painter",
]
