"""The `cors-scanner` command line.

Each submodule owns a group of commands and exposes ``register(subparsers)``;
every command's handler takes ``(args, settings)`` and returns an exit code.
A command parses its flags, calls one use case (``scanner.usecases``, through
``scanner.cli.database.run_use_cases``, which also decides where the database
is) and prints through ``scanner.cli.output``: an aligned table or a record of
human values, or the JSON of ``scanner.shapes`` (``--format json``), the same
shapes the REST API answers.

Exit codes mean the same everywhere:
    0  success; for scans: no finding at or above --fail-on
    1  a scan found something at or above --fail-on
    2  usage, input or configuration error (the message says which)
    3  a scan could probe nothing at all (every endpoint unreachable)
    4  the database is unreachable or its schema is not current
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import scanner
from scanner.errors import DatabaseError, ScannerError
from scanner.logs import configure_logging
from scanner.settings import Settings

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_NOTHING_PROBED = 3
EXIT_UNAVAILABLE = 4

# The command groups, in help order. A module missing here is a bug, not an option.
COMMAND_MODULES = (
    "scanner.cli.scan",
    "scanner.cli.explain",
    "scanner.cli.serve",
    "scanner.cli.runs",
    "scanner.cli.inventory",
    "scanner.cli.tokens",
    "scanner.cli.findings",
    "scanner.cli.database",
    "scanner.cli.demo",
    "scanner.cli.completion",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with our message style on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"cors-scanner: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cors-scanner",
        description="Find CORS misconfigurations the way a browser would judge them.",
    )
    parser.add_argument(
        "--version", action="version", version=f"cors-scanner {scanner.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        configure_logging(settings)
        return int(args.handler(args, settings))
    except DatabaseError as exc:
        print(f"cors-scanner: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ScannerError as exc:
        print(f"cors-scanner: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `scan --format json | head`: the reader left; that is not our error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("cors-scanner: interrupted", file=sys.stderr)
        return 130
