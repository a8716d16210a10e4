"""`cors-scanner tokens create|list|revoke` and `cors-scanner audit`: API tokens and the audit log.

The secret of a new token is printed once (stdout, alone on its line with
``--quiet`` so scripts can capture it). Changes are recorded in the audit log
with the actor ``cli``; ``audit`` reads that log, newest first.
"""

from __future__ import annotations

import argparse
from typing import Any

from scanner import shapes
from scanner.cli import EXIT_OK
from scanner.cli.database import run_use_cases
from scanner.cli.output import Column, Output, add_format_flag
from scanner.cli.paging import add_paging_flags, collect
from scanner.db.audit import AuditRecord
from scanner.settings import Settings
from scanner.usecases import Context, tokens

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
    add_format_flag(listing)
    listing.set_defaults(handler=_list)

    revoke = sub.add_parser("revoke", help="revoke a token for good")
    revoke.add_argument("id", type=_token_id, help="the token's id (see `tokens list`)")
    revoke.set_defaults(handler=_revoke)

    audit = subparsers.add_parser(
        "audit",
        help="the audit log, newest first: who changed what, and when",
        description=(
            "Every change (tokens, endpoints, policies, schedules, hooks, triage, runs) is "
            "recorded with its actor; this lists them, newest first."
        ),
    )
    add_paging_flags(audit, "entries")
    add_format_flag(audit)
    audit.set_defaults(handler=_audit)


_TOKEN_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("NAME", "name"),
    Column("PREFIX", lambda d: d["prefix"] + "…"),
    Column("SCOPES", "scopes"),
    Column("CREATED", "created_at"),
    Column("CREATED BY", "created_by"),
    Column("LAST USED", lambda d: d["last_used_at"] or "never"),
    Column("STATE", lambda d: "active" if d["active"] else "revoked"),
)

_AUDIT_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("AT", "at"),
    Column("ACTOR", "actor"),
    Column("ACTION", "action"),
    Column("TARGET", lambda d: f"{d['target_type']} {d['target_id'] or ''}".strip()),
    Column("DETAIL", "detail"),
)


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
    Output(settings).listing(args.format, rows, _TOKEN_COLUMNS, empty="no tokens")
    return EXIT_OK


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    async def work(ctx: Context) -> tuple[list[AuditRecord], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: tokens.list_audit(ctx, limit=limit, cursor=cursor),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.audit_entry_json(e) for e in items]
    Output(settings).listing(
        args.format, docs, _AUDIT_COLUMNS, empty="the audit log is empty", next_cursor=cursor
    )
    return EXIT_OK


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(settings, lambda ctx: tokens.revoke_token(ctx, args.id, actor=ACTOR))
    Output(settings).line(f"Revoked token {record.id} {record.name!r}.")
    return EXIT_OK
