"""`cors-scanner scan`: a one-shot scan of URLs, judged as a browser would."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from scanner import eventloop
from scanner.cli import EXIT_FINDINGS, EXIT_NOTHING_PROBED, EXIT_OK
from scanner.cli.options import add_probe_flags, apply_probe_flags
from scanner.cli.output import ScanProgress, severity_painter
from scanner.core.browser import normalize_method
from scanner.core.checks import Assessment
from scanner.core.endpoints import parse_header_line
from scanner.core.origin import Origin, masked_url
from scanner.core.plan import Endpoint, PlanSettings
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.engine import Engine, ScanOptions, Target, scan_options
from scanner.errors import InputError, InvalidURL
from scanner.hostnames import default_public_suffixes, uts46_host_encoder
from scanner.reports.csv import render_csv
from scanner.reports.json import ScanDocumentWriter
from scanner.reports.junit import render_junit
from scanner.reports.sarif import render_sarif
from scanner.reports.table import Painter, plain, render_assessment, render_summary
from scanner.settings import Settings

MAX_TARGET_FILE_BYTES = 20 * 1024 * 1024


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "scan",
        help="scan URLs once and report CORS misconfigurations",
        description=(
            "Probe each URL with its own origin, the policy's origins and attacker variants, "
            "judge every response as Chromium would, and report misconfigurations. "
            "Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, "
            "2 usage or input error, 3 nothing could be probed "
            "(or, with --fail-on-incomplete, some endpoint could not be probed)."
        ),
    )
    p.add_argument("urls", nargs="*", metavar="URL", help="endpoint URLs to scan")
    p.add_argument(
        "-i",
        "--input",
        metavar="FILE",
        help="file of endpoints, one per line: 'URL' or 'METHOD URL' ('-' for stdin; # comments)",
    )
    p.add_argument(
        "--method",
        default="GET",
        help="the endpoints' HTTP method as the front end sends it (default GET; "
        "like fetch(), only DELETE GET HEAD OPTIONS POST PUT are uppercased: patch stays patch)",
    )
    policy = p.add_argument_group("the policy the endpoints should have")
    policy.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin the front ends use (repeat); patterns like https://*.acme.com allowed",
    )
    policy.add_argument(
        "--allow-credentials", action="store_true", help="front ends send credentials"
    )
    policy.add_argument(
        "--allow-method",
        action="append",
        default=[],
        metavar="M",
        help="a method the front ends use cross-origin (repeat)",
    )
    policy.add_argument(
        "--allow-header",
        action="append",
        default=[],
        metavar="NAME",
        help="a request header the front ends send cross-origin (repeat)",
    )
    policy.add_argument(
        "--max-age", type=int, metavar="S", help="the highest acceptable preflight max-age"
    )
    policy.add_argument(
        "--public", action="store_true", help="the endpoints are public: '*' is fine"
    )
    probes = p.add_argument_group("what to send")
    probes.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header the front end sends, e.g. an API key or Content-Type (repeat): "
        "sent on actual requests, named in the legitimate preflight, never sent on a "
        "preflight, redacted in every report",
    )
    probes.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an extra Origin to probe (repeat)",
    )
    probes.add_argument(
        "--only-origins",
        action="store_true",
        help="probe exactly the --origin values and nothing else",
    )
    probes.add_argument(
        "--send-unsafe-methods",
        action="store_true",
        help="send POST/PUT/DELETE/PATCH as actual requests (default: GET stands in for them)",
    )
    add_probe_flags(p)
    out = p.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "json", "sarif", "junit", "csv"),
        default="table",
        help="table (people), json (docs/scan-json.md), sarif (SARIF 2.1.0), junit (JUnit XML), "
        "csv (one row per finding); see docs/ci.md",
    )
    out.add_argument(
        "-o", "--output", metavar="FILE", help="write the report here instead of stdout"
    )
    out.add_argument(
        "--fail-on",
        default="high",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above this: critical, high, medium, low, info (default high)",
    )
    out.add_argument(
        "--fail-on-incomplete",
        action="store_true",
        help="exit 3 when any endpoint could not be probed",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run)


def read_targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(method, url) pairs from the arguments and the input file, in order, deduplicated."""
    method = _method(args.method)
    pairs = [(method, url) for url in args.urls]
    if args.input:
        pairs.extend(_read_target_file(args.input, method))
    if not pairs:
        raise InputError("nothing to scan: give URLs or --input FILE")
    return list(dict.fromkeys(pairs))


def _method(text: str) -> str:
    """The method as the front end's ``fetch()`` sends it: DELETE GET HEAD OPTIONS POST
    PUT uppercased in any case, any other token kept as written (``patch`` stays ``patch``)."""
    method = text.strip()
    if not method.isascii() or not method.isalpha() or len(method) > 16:
        raise InputError(f"{text!r} is not an HTTP method")
    return normalize_method(method)


def _read_target_file(path: str, default_method: str) -> list[tuple[str, str]]:
    if path == "-":
        data = sys.stdin.read(MAX_TARGET_FILE_BYTES + 1)
    else:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"{path}: no such file")
        if file.stat().st_size > MAX_TARGET_FILE_BYTES:
            raise InputError(f"{path}: larger than {MAX_TARGET_FILE_BYTES} bytes")
        try:
            data = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if len(data) > MAX_TARGET_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_TARGET_FILE_BYTES} bytes")
    pairs = []
    for number, line in enumerate(data.splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) == 1:
            pairs.append((default_method, parts[0]))
        elif len(parts) == 2:
            try:
                pairs.append((_method(parts[0]), parts[1]))
            except InputError as exc:
                raise InputError(f"{path}:{number}: {exc.message}") from None
        else:
            raise InputError(f"{path}:{number}: expected 'URL' or 'METHOD URL', got {text!r}")
    return pairs


def validate_url(url: str) -> str:
    """An absolute http(s) URL without credentials; the scanner's own check, before any I/O."""
    origin = Origin.from_url(url, encode_host=uts46_host_encoder)
    if origin.scheme not in ("http", "https"):
        raise InvalidURL(f"{masked_url(url)!r}: only http and https URLs can be scanned")
    head = url.split("://", 1)[1].split("/", 1)[0]
    if "@" in head:
        raise InvalidURL(f"{masked_url(url)!r}: put credentials in --header, not in the URL")
    return url


def build_policy(args: argparse.Namespace) -> Policy:
    return Policy.build(
        allowed_origins=args.allow_origin,
        allow_credentials=args.allow_credentials,
        allowed_methods=args.allow_method,
        allowed_headers=args.allow_header,
        max_age=args.max_age,
        public=args.public,
        encode_host=uts46_host_encoder,
    )


def build_options(args: argparse.Namespace, settings: Settings) -> ScanOptions:
    headers = tuple(parse_header_line(h) for h in args.header)
    origins = tuple(
        Origin.parse(o, encode_host=uts46_host_encoder).serialize()
        if o.strip() != "null"
        else "null"
        for o in args.origin
    )
    if args.only_origins and not origins:
        raise InputError("--only-origins needs at least one --origin")
    return replace(
        scan_options(apply_probe_flags(args, settings)),
        plan=PlanSettings(
            send_unsafe_methods=args.send_unsafe_methods, extra_request_headers=headers
        ),
        origins=origins,
        only_origins=args.only_origins,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    fail_on = Severity.parse(args.fail_on)
    policy = build_policy(args)
    targets = [
        Target(Endpoint(validate_url(url), method), policy) for method, url in read_targets(args)
    ]
    options = build_options(args, settings)
    progress = _Display(settings, bar=sys.stderr.isatty() and not args.no_progress)
    with _output(args.output) as stream:
        report = _Report(args.format, stream, fail_on)
        assessments = eventloop.run(_scan(targets, options, progress, report))
        report.finish(assessments)
    return exit_code(assessments, fail_on, incomplete_fails=args.fail_on_incomplete)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report ({exc.strerror})") from None
    with stream:
        yield stream


class _Report:
    """Writes the report as the scan goes: JSON and table stream each endpoint when it
    is judged; SARIF, JUnit and CSV need every finding first and render at the end.
    What is kept meanwhile is each endpoint's slim assessment (findings and failures)."""

    def __init__(self, fmt: str, stream: TextIO, fail_on: Severity) -> None:
        self.fmt = fmt
        self.stream = stream
        self.fail_on = fail_on
        self.started = datetime.now(UTC)
        self._json = ScanDocumentWriter(stream, started_at=self.started) if fmt == "json" else None
        self.paint: Painter = plain  # severity colour of the table: set by _scan for its stream

    def add(self, assessment: Assessment) -> None:
        if self._json is not None:
            self._json.add(assessment)
        elif self.fmt == "table":
            self.stream.write(render_assessment(assessment, self.paint))
        self.stream.flush()

    def finish(self, assessments: list[Assessment]) -> None:
        finished = datetime.now(UTC)
        if self._json is not None:
            self._json.finish(assessments, finished_at=finished, fail_on=self.fail_on)
        elif self.fmt == "table":
            seconds = (finished - self.started).total_seconds()
            self.stream.write(render_summary(assessments, self.fail_on, seconds, self.paint))
        else:
            renderer = _RENDERERS[self.fmt]
            self.stream.write(
                renderer(
                    assessments, started_at=self.started, finished_at=finished, fail_on=self.fail_on
                )
            )


def exit_code(assessments: list[Assessment], fail_on: Severity, *, incomplete_fails: bool) -> int:
    if not any(a.reachable for a in assessments):
        return EXIT_NOTHING_PROBED
    if any(f.severity >= fail_on for a in assessments for f in a.findings):
        return EXIT_FINDINGS
    if incomplete_fails and not all(a.reachable for a in assessments):
        return EXIT_NOTHING_PROBED
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class _Display:
    """How the scan shows itself: the settings (severity colour) and whether to draw the
    progress bar (stderr is a terminal and no --no-progress)."""

    settings: Settings
    bar: bool


async def _scan(
    targets: list[Target], options: ScanOptions, display: _Display, report: _Report
) -> list[Assessment]:
    """Scan, handing each assessment to the report at once; return the slim ones in input order.

    The progress bar (``scanner.cli.output.ScanProgress``) is cleared around every block
    the report writes, so a table never starts on the bar's line."""
    order = {t.endpoint.key: i for i, t in enumerate(targets)}
    results: list[Assessment] = []
    report.paint = severity_painter(display.settings, report.stream)
    with ScanProgress(len(targets), enabled=display.bar) as bar:
        async with Engine(options, default_public_suffixes()) as engine:
            async for assessment in engine.scan(targets):
                with bar.writing(report.stream):
                    report.add(assessment)
                results.append(assessment.slim())
                bar.advance(len(assessment.findings))
    results.sort(key=lambda a: order.get(a.endpoint.key, 0))
    return results


# Machine formats rendered whole by one function: (assessments, *, started_at,
# finished_at, fail_on) -> text.
_RENDERERS = {"sarif": render_sarif, "junit": render_junit, "csv": render_csv}
