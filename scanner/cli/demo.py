"""`cors-scanner demo`: serve the built-in demo target, a safe thing to scan.

Binds 127.0.0.1 by default: the demo's paths are deliberately broken, and
some echo any Origin with credentials; nothing outside the machine should
reach them unless the user asks with ``--host``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aiohttp import web

from scanner.cli import EXIT_OK
from scanner.demo import DEMO_CASES, demo_app
from scanner.errors import InputError
from scanner.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="serve a demo target with one path per CORS misconfiguration",
        description=(
            "Serve the built-in demo target: one path per CORS behaviour, each broken the way "
            "real servers break (and a few correct ones). Open / for the list of paths and "
            "the scan command for each. Runs until interrupted (Ctrl-C)."
        ),
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind (default {DEFAULT_PORT})"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 for a bad port."""
    if not 0 < args.port <= 65535:
        raise InputError(f"--port {args.port}: expected a port number 1-65535")
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{args.port}"

    def announce(text: str) -> None:
        # aiohttp's own banner, then ours: where to look and what to run first.
        print(text)
        print(f"cors-scanner demo target at {base}/ ({len(DEMO_CASES)} paths)")
        print(
            f"Try: cors-scanner scan {base}/reflect-credentials --allow-origin https://app.acme.test"
        )
        sys.stdout.flush()

    web.run_app(demo_app(), host=host, port=args.port, print=announce, handle_signals=True)
    return EXIT_OK
