"""`cors-scanner findings|regressions|hooks`: tracked findings, triage, regressions, alert hooks.

The command-line twin of ``/api/v1/findings``, ``/api/v1/regressions`` and
``/api/v1/hooks``: same store, same JSON shapes (``--format json``). Changes
are recorded in the audit log with the actor ``cli`` (or ``--by``). Hook
secrets are printed once, when they are made; never listed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from scanner.cli import EXIT_OK
from scanner.db.engine import Database
from scanner.errors import InputError
from scanner.settings import Settings

T = TypeVar("T")
LIST_LIMIT = 500


def _id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text} is not an id")
    return value


def _time(text: str) -> datetime:
    from scanner.api.handlers.findings import parse_time

    try:
        return parse_time(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} {exc.message}") from None


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_findings(subparsers)
    _register_regressions(subparsers)
    _register_hooks(subparsers)


def _fmt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _register_findings(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "findings",
        help="tracked findings across runs: list, show, triage, history",
        description="One finding per fingerprint, across runs, with its triage and history.",
    )
    sub = p.add_subparsers(dest="findings_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="list tracked findings")
    listing.add_argument("--status", help="comma-separated: new,open,resolved,reopened,suppressed")
    listing.add_argument("--severity", help="minimum severity")
    listing.add_argument("--rule", help="rule id")
    listing.add_argument("--endpoint", type=_id, help="endpoint id")
    listing.add_argument("--tag")
    listing.add_argument("--owner")
    listing.add_argument("--run", type=_id, help="only findings this run saw")
    listing.add_argument("--first-seen-after", type=_time)
    listing.add_argument("--last-seen-after", type=_time)
    _fmt(listing)
    listing.set_defaults(handler=_findings_list)

    show = sub.add_parser("show", help="one finding")
    show.add_argument("id", type=_id)
    _fmt(show)
    show.set_defaults(handler=_findings_show)

    for name, what in (
        ("suppress", "a false positive or won't fix (optional --until)"),
        ("accept", "accept the risk until a date (--until required)"),
        ("reopen", "withdraw a suppression or acceptance"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("id", type=_id)
        cmd.add_argument("--reason", required=name != "reopen", default="")
        cmd.add_argument("--by", default="cli", help="who decides (audit log)")
        if name != "reopen":
            expiry = cmd.add_mutually_exclusive_group(required=name == "accept")
            expiry.add_argument("--until", type=_time, help="ISO 8601 with a time zone")
            expiry.add_argument("--days", type=int, help="or: this many days from now")
        _fmt(cmd)
        cmd.set_defaults(handler=_findings_triage, triage=name)

    history = sub.add_parser("history", help="a finding's events, oldest first")
    history.add_argument("id", type=_id)
    _fmt(history)
    history.set_defaults(handler=_findings_history)


def _register_regressions(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("regressions", help="regressions found by runs")
    sub = p.add_subparsers(dest="regressions_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="regressions, newest first")
    listing.add_argument("--since", type=_time, help="ISO 8601 with zone")
    listing.add_argument("--run", type=_id, help="only this run's")
    _fmt(listing)
    listing.set_defaults(handler=_regressions_list)


def _register_hooks(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("hooks", help="alert hooks: webhook, Slack, PagerDuty")
    sub = p.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add a hook (a webhook's secret is printed once)")
    add.add_argument("name")
    add.add_argument("--kind", choices=("webhook", "slack", "pagerduty"), default="webhook")
    add.add_argument("--url", help="the receiver (PagerDuty: the Events API by default)")
    add.add_argument("--secret", help="whsec_... (webhooks; generated when absent)")
    add.add_argument("--github-signature", action="store_true", help="add X-Hub-Signature-256")
    add.add_argument("--routing-key", help="PagerDuty integration key")
    add.add_argument("--event-kind", action="append", default=[], help="repeatable")
    add.add_argument("--min-severity")
    add.add_argument("--tag", action="append", default=[])
    add.add_argument("--owner", action="append", default=[])
    _fmt(add)
    add.set_defaults(handler=_hooks_add)

    listing = sub.add_parser("list", help="list hooks (never their secrets)")
    _fmt(listing)
    listing.set_defaults(handler=_hooks_list)

    for name, handler, what in (
        ("show", _hooks_show, "one hook"),
        ("remove", _hooks_remove, "remove a hook and its delivery log"),
        ("test", _hooks_test, "queue a hook.test event"),
        ("deliveries", _hooks_deliveries, "a hook's deliveries and attempts"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("id", type=_id)
        _fmt(cmd)
        cmd.set_defaults(handler=handler)

    redeliver = sub.add_parser("redeliver", help="send a delivery again (same webhook-id)")
    redeliver.add_argument("delivery_id", type=_id)
    _fmt(redeliver)
    redeliver.set_defaults(handler=_hooks_redeliver)


# -- plumbing ------------------------------------------------------------------


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = await Database.connect(settings.database_url)
        try:
            await database.ensure_current(auto_upgrade=database.dialect == "sqlite")
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(main())


def _emit(args: argparse.Namespace, doc: Any, rows: Sequence[Sequence[Any]]) -> int:
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for row in rows:
        print("  ".join("-" if v is None else str(v) for v in row))
    return EXIT_OK


def _finding_row(doc: dict[str, Any]) -> list[Any]:
    return [
        doc["id"],
        doc["status"],
        doc["severity"],
        doc["rule_id"],
        f"endpoint {doc['endpoint_id']}",
        doc["last_seen_at"],
        "" if doc["verified"] else "(not verified)",
    ]


def _event_row(doc: dict[str, Any]) -> list[Any]:
    return [doc["id"], doc["at"], doc["kind"], doc["severity"], doc["rule_id"], doc["run_id"]]


# -- findings ------------------------------------------------------------------


def _findings_list(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.findings import finding_json
    from scanner.core.severity import Severity
    from scanner.db import findings as store

    q = store.FindingQuery(
        statuses=store.status_filter(args.status),
        min_severity=Severity.parse(args.severity) if args.severity else None,
        rule_id=args.rule,
        endpoint_id=args.endpoint,
        tag=args.tag,
        owner=args.owner,
        run_id=args.run,
        first_seen_after=args.first_seen_after,
        last_seen_after=args.last_seen_after,
    )

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session, session.begin():
            page = await store.list_findings(session, q, limit=LIST_LIMIT)
        return [finding_json(f) for f in page.items]

    docs = _with_database(settings, work)
    return _emit(args, docs, [_finding_row(d) for d in docs])


def _findings_show(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.findings import finding_json
    from scanner.db import findings as store

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            return finding_json(await store.get_finding(session, args.id))

    doc = _with_database(settings, work)
    rows = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in doc.items()]
    return _emit(args, doc, rows)


def _findings_triage(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.findings import finding_json
    from scanner.db import audit
    from scanner.db import findings as store

    now = datetime.now(UTC)
    until = getattr(args, "until", None)
    if getattr(args, "days", None):
        until = now + timedelta(days=args.days)
    status = {"suppress": "suppressed", "accept": "accepted", "reopen": "open"}[args.triage]

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            record, event = await store.triage(
                session,
                args.id,
                status=status,
                by=args.by,
                reason=args.reason,
                until=until,
                now=now,
            )
            await audit.record(
                session,
                actor=args.by,
                action=f"finding.{status}",
                target_type="finding",
                target_id=str(record.id),
                detail={"reason": args.reason, "event": event.kind.value},
            )
        return finding_json(record)

    doc = _with_database(settings, work)
    return _emit(args, doc, [_finding_row(doc)])


def _findings_history(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.findings import event_json
    from scanner.db import findings as store

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session, session.begin():
            return [event_json(e) for e in await store.finding_history(session, args.id)]

    docs = _with_database(settings, work)
    return _emit(args, docs, [_event_row(d) for d in docs])


def _regressions_list(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.findings import event_json
    from scanner.db import findings as store

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session, session.begin():
            page = await store.list_events(
                session, since=args.since, run_id=args.run, limit=LIST_LIMIT
            )
        return [event_json(e) for e in page.items]

    docs = _with_database(settings, work)
    return _emit(args, docs, [_event_row(d) for d in docs])


# -- hooks ---------------------------------------------------------------------


def _hooks_add(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.hooks import check_url, hook_json
    from scanner.core.severity import Severity
    from scanner.db import audit
    from scanner.db import hooks as store

    data = store.HookInput(
        name=args.name,
        kind=store.HookKind(args.kind),
        url=args.url,
        secret=args.secret,
        github_signature=args.github_signature,
        routing_key=args.routing_key,
        event_kinds=tuple(args.event_kind),
        min_severity=Severity.parse(args.min_severity) if args.min_severity else None,
        tags=tuple(args.tag),
        owners=tuple(args.owner),
    )

    async def work(database: Database) -> dict[str, Any]:
        await check_url(settings, data.target_url)
        async with database.session() as session, session.begin():
            hook, secret = await store.create_hook(session, data, by="cli", now=datetime.now(UTC))
            await audit.record(
                session,
                actor="cli",
                action="hook.create",
                target_type="hook",
                target_id=str(hook.id),
                detail={"name": hook.name, "kind": hook.kind.value},
            )
        return hook_json(hook, secret=secret)

    doc = _with_database(settings, work)
    rows = [[doc["id"], doc["name"], doc["kind"], doc["url"]]]
    if "secret" in doc:
        rows.append([f"secret (shown once): {doc['secret']}"])
    return _emit(args, doc, rows)


def _hook_row(doc: dict[str, Any]) -> list[Any]:
    state = "enabled" if doc["enabled"] else f"disabled ({doc['disabled_reason'] or 'by a user'})"
    return [doc["id"], doc["name"], doc["kind"], doc["url"], state]


def _hooks_list(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.hooks import hook_json
    from scanner.db import hooks as store

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session, session.begin():
            return [hook_json(h) for h in await store.list_hooks(session)]

    docs = _with_database(settings, work)
    return _emit(args, docs, [_hook_row(d) for d in docs])


def _hooks_show(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.hooks import hook_json
    from scanner.db import hooks as store

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            return hook_json(await store.get_hook(session, args.id))

    doc = _with_database(settings, work)
    return _emit(args, doc, [[k, v] for k, v in doc.items()])


def _hooks_remove(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.db import audit
    from scanner.db import hooks as store

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            await store.delete_hook(session, args.id)
            await audit.record(
                session,
                actor="cli",
                action="hook.delete",
                target_type="hook",
                target_id=str(args.id),
            )
        return {"id": args.id, "removed": True}

    doc = _with_database(settings, work)
    return _emit(args, doc, [[f"hook {args.id} removed"]])


def _delivery_row(doc: dict[str, Any]) -> list[Any]:
    last = doc["attempt_log"][-1] if doc["attempt_log"] else None
    return [
        doc["id"],
        doc["event_type"],
        doc["status"],
        f"{doc['attempts']} attempt(s)",
        last["status"] if last else None,
        doc["last_error"],
    ]


def _hooks_test(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.alerts.envelope import AlertEvent, EventType
    from scanner.api.handlers.hooks import delivery_json
    from scanner.db import hooks as store
    from scanner.errors import Conflict

    now = datetime.now(UTC)
    event = AlertEvent(
        type=EventType.HOOK_TEST,
        occurred_at=now,
        title="cors-scanner test event",
        summary="A test of this hook, requested from the command line.",
    )

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            hook = await store.get_hook(session, args.id)
            if not hook.enabled:
                raise Conflict(f"hook {hook.id} is disabled: {hook.disabled_reason or 'by a user'}")
            [delivery_id] = await store.enqueue_events(
                session, [store.OutgoingEvent(event, None)], now=now, hooks=[hook.id]
            )
            return delivery_json(await store.get_delivery(session, delivery_id))

    doc = _with_database(settings, work)
    return _emit(args, doc, [_delivery_row(doc)])


def _hooks_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.hooks import delivery_json
    from scanner.db import hooks as store

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session, session.begin():
            page = await store.list_deliveries(session, args.id, limit=LIST_LIMIT)
        return [delivery_json(d) for d in page.items]

    docs = _with_database(settings, work)
    return _emit(args, docs, [_delivery_row(d) for d in docs])


def _hooks_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.api.handlers.hooks import delivery_json
    from scanner.db import hooks as store

    async def work(database: Database) -> dict[str, Any]:
        async with database.session() as session, session.begin():
            record = await store.redeliver(session, args.delivery_id, now=datetime.now(UTC))
        return delivery_json(record)

    doc = _with_database(settings, work)
    return _emit(args, doc, [_delivery_row(doc)])
