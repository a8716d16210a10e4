"""`cors-scanner tokens create|list|revoke`: API tokens from the command line.

The secret of a new token is printed once (stdout, alone on its line with
``--quiet`` so scripts can capture it). Changes are recorded in the audit log
with the actor ``cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from scanner import shapes
from scanner.cli import EXIT_OK
from scanner.cli.database import run_use_cases
from scanner.settings import Settings
from scanner.usecases import tokens

ACTOR = "cli"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "tokens",
        help="create, list and revoke API tokens",
        description="API tokens for the REST API (Authorization: Bearer <token>).",
    )
    sub = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a token and print its secret once")
    create.add_argument("name", help="who or what uses the token (shown in the audit log)")
    create.add_argument(
        "--scope",
        action="append",
        choices=("read", "write", "admin"),
        required=True,
        help="read, write or admin (repeat; admin includes write, write includes read)",
    )
    create.add_argument("--quiet", action="store_true", help="print only the secret")
    create.set_defaults(handler=_create)

    listing = sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    revoke = sub.add_parser("revoke", help="revoke a token for good")
    revoke.add_argument("id", type=_token_id, help="the token's id (see `tokens list`)")
    revoke.set_defaults(handler=_revoke)


def _token_id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text} is not a token id")
    return value


def _create(args: argparse.Namespace, settings: Settings) -> int:
    made = run_use_cases(
        settings, lambda ctx: tokens.create_token(ctx, args.name, args.scope, actor=ACTOR)
    )
    if args.quiet:
        print(made.secret)
    else:
        record = made.token
        scopes = ", ".join(sorted(s.value for s in record.scopes))
        print(f"Created token {record.id} {record.name!r} ({scopes}). Its secret, shown only once:")
        print(f"\n    {made.secret}\n")
    return EXIT_OK


def _list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [shapes.token_json(t) for t in run_use_cases(settings, tokens.list_tokens)]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return EXIT_OK
    if not rows:
        print("no tokens")
        return EXIT_OK
    header = ("ID", "NAME", "PREFIX", "SCOPES", "LAST USED", "STATE")
    table = [
        (
            str(r["id"]),
            r["name"],
            r["prefix"] + "…",
            ",".join(r["scopes"]),
            r["last_used_at"] or "never",
            "active" if r["active"] else "revoked",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table, strict=False)]
    for line in (header, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(settings, lambda ctx: tokens.revoke_token(ctx, args.id, actor=ACTOR))
    print(f"Revoked token {record.id} {record.name!r}.")
    return EXIT_OK
