"""Flags shared by the commands that probe (`scan`, `explain`), and their parsing."""

from __future__ import annotations

import argparse
from dataclasses import replace

from scanner.settings import Settings


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


def apply_probe_flags(args: argparse.Namespace, settings: Settings) -> Settings:
    """Settings with the probing flags given on the command line applied (flags win)."""
    flags = {
        "timeout": getattr(args, "timeout", None),
        "retries": getattr(args, "retries", None),
        "concurrency": getattr(args, "concurrency", None),
        "per_host": getattr(args, "per_host", None),
        "per_host_rate": getattr(args, "rate", None),
        "user_agent": getattr(args, "user_agent", None),
        "ca_bundle": getattr(args, "ca_bundle", None),
        "insecure": getattr(args, "insecure", None),
    }
    given = {name: value for name, value in flags.items() if value is not None}
    return replace(settings, **given) if given else settings
