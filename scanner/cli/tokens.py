"""`cors-scanner tokens create|list|revoke`: API tokens from the command line.

The secret of a new token is printed once (stdout, alone on its line with
``--quiet`` so scripts can capture it). Changes are recorded in the audit log
with the actor ``cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from scanner.cli import EXIT_OK
from scanner.db.engine import Database
from scanner.settings import Settings

T = TypeVar("T")


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


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = await Database.connect(settings.database_url)
        try:
            # The embedded SQLite default migrates itself, as `serve` does.
            await database.ensure_current(auto_upgrade=database.dialect == "sqlite")
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(main())


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.db import audit, tokens

    async def work(database: Database) -> tuple[Any, str]:
        async with database.session() as session, session.begin():
            record, secret = await tokens.create_token(
                session, args.name, args.scope, created_by="cli"
            )
            await audit.record(
                session,
                actor="cli",
                action="token.create",
                target_type="token",
                target_id=str(record.id),
                detail={"name": record.name, "scopes": sorted(s.value for s in record.scopes)},
            )
        return record, secret

    record, secret = _with_database(settings, work)
    if args.quiet:
        print(secret)
    else:
        scopes = ", ".join(sorted(s.value for s in record.scopes))
        print(f"Created token {record.id} {record.name!r} ({scopes}). Its secret, shown only once:")
        print(f"\n    {secret}\n")
    return EXIT_OK


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.db import tokens

    async def work(database: Database) -> list[Any]:
        async with database.session() as session, session.begin():
            return await tokens.list_tokens(session)

    found = _with_database(settings, work)
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "scopes": sorted(s.value for s in t.scopes),
            "created_at": _iso(t.created_at),
            "created_by": t.created_by,
            "last_used_at": _iso(t.last_used_at),
            "revoked_at": _iso(t.revoked_at),
        }
        for t in found
    ]
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
            "revoked" if r["revoked_at"] else "active",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table, strict=False)]
    for line in (header, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.db import audit, tokens

    async def work(database: Database) -> Any:
        async with database.session() as session, session.begin():
            record = await tokens.revoke_token(session, args.id)
            await audit.record(
                session,
                actor="cli",
                action="token.revoke",
                target_type="token",
                target_id=str(record.id),
                detail={"name": record.name},
            )
            return record

    record = _with_database(settings, work)
    print(f"Revoked token {record.id} {record.name!r}.")
    return EXIT_OK
