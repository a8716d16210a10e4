"""`cors-scanner findings|regressions|hooks`: tracked findings, triage, regressions, alert hooks.

The command-line twin of ``/api/v1/findings``, ``/api/v1/regressions`` and
``/api/v1/hooks``: same store, same JSON shapes (``--format json``). Changes
are recorded in the audit log with the actor ``cli`` (or ``--by``). Hook
secrets are printed once, when they are made; never listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from scanner import shapes
from scanner.cli import EXIT_OK
from scanner.cli.database import run_use_cases
from scanner.core.severity import Severity
from scanner.core.timestamps import parse_iso
from scanner.db.findings import FindingQuery, FindingRecord, status_filter
from scanner.db.hooks import HookInput, HookKind
from scanner.errors import InputError
from scanner.settings import Settings
from scanner.usecases import Context, hooks, triage
from scanner.usecases.triage import Decision

ACTOR = "cli"
LIST_LIMIT = 500


def _id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text} is not an id")
    return value


def _time(text: str) -> datetime:
    try:
        return parse_iso(text)
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
    q = FindingQuery(
        statuses=status_filter(args.status),
        min_severity=Severity.parse(args.severity) if args.severity else None,
        rule_id=args.rule,
        endpoint_id=args.endpoint,
        tag=args.tag,
        owner=args.owner,
        run_id=args.run,
        first_seen_after=args.first_seen_after,
        last_seen_after=args.last_seen_after,
    )
    page = run_use_cases(settings, lambda ctx: triage.list_findings(ctx, q, limit=LIST_LIMIT))
    docs = [shapes.finding_json(f) for f in page.items]
    return _emit(args, docs, [_finding_row(d) for d in docs])


def _findings_show(args: argparse.Namespace, settings: Settings) -> int:
    doc = shapes.finding_json(run_use_cases(settings, lambda ctx: triage.get_finding(ctx, args.id)))
    rows = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in doc.items()]
    return _emit(args, doc, rows)


def _findings_triage(args: argparse.Namespace, settings: Settings) -> int:
    decision = {"suppress": Decision.SUPPRESS, "accept": Decision.ACCEPT, "reopen": Decision.REOPEN}
    days = getattr(args, "days", None)

    async def work(ctx: Context) -> FindingRecord:
        until = getattr(args, "until", None)
        if days:
            until = ctx.now() + timedelta(days=days)
        return await triage.triage(
            ctx, args.id, decision[args.triage], actor=args.by, reason=args.reason, until=until
        )

    doc = shapes.finding_json(run_use_cases(settings, work))
    return _emit(args, doc, [_finding_row(doc)])


def _findings_history(args: argparse.Namespace, settings: Settings) -> int:
    history = run_use_cases(settings, lambda ctx: triage.finding_history(ctx, args.id))
    docs = [shapes.event_json(e) for e in history.events]
    return _emit(args, docs, [_event_row(d) for d in docs])


def _regressions_list(args: argparse.Namespace, settings: Settings) -> int:
    page = run_use_cases(
        settings,
        lambda ctx: triage.list_regressions(
            ctx, since=args.since, run_id=args.run, limit=LIST_LIMIT
        ),
    )
    docs = [shapes.event_json(e) for e in page.items]
    return _emit(args, docs, [_event_row(d) for d in docs])


# -- hooks ---------------------------------------------------------------------


def _hooks_add(args: argparse.Namespace, settings: Settings) -> int:
    data = HookInput(
        name=args.name,
        kind=HookKind(args.kind),
        url=args.url,
        secret=args.secret,
        github_signature=args.github_signature,
        routing_key=args.routing_key,
        event_kinds=tuple(args.event_kind),
        min_severity=Severity.parse(args.min_severity) if args.min_severity else None,
        tags=tuple(args.tag),
        owners=tuple(args.owner),
    )
    made = run_use_cases(settings, lambda ctx: hooks.create_hook(ctx, data, actor=ACTOR))
    doc = shapes.hook_json(made.hook, secret=made.secret)
    rows = [[doc["id"], doc["name"], doc["kind"], doc["url"]]]
    if "secret" in doc:
        rows.append([f"secret (shown once): {doc['secret']}"])
    return _emit(args, doc, rows)


def _hook_row(doc: dict[str, Any]) -> list[Any]:
    state = "enabled" if doc["enabled"] else f"disabled ({doc['disabled_reason'] or 'by a user'})"
    return [doc["id"], doc["name"], doc["kind"], doc["url"], state]


def _hooks_list(args: argparse.Namespace, settings: Settings) -> int:
    docs = [shapes.hook_json(h) for h in run_use_cases(settings, hooks.list_hooks)]
    return _emit(args, docs, [_hook_row(d) for d in docs])


def _hooks_show(args: argparse.Namespace, settings: Settings) -> int:
    doc = shapes.hook_json(run_use_cases(settings, lambda ctx: hooks.get_hook(ctx, args.id)))
    return _emit(args, doc, [[k, v] for k, v in doc.items()])


def _hooks_remove(args: argparse.Namespace, settings: Settings) -> int:
    run_use_cases(settings, lambda ctx: hooks.delete_hook(ctx, args.id, actor=ACTOR))
    return _emit(args, {"id": args.id, "removed": True}, [[f"hook {args.id} removed"]])


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
    record = run_use_cases(settings, lambda ctx: hooks.send_test_event(ctx, args.id, actor=ACTOR))
    doc = shapes.delivery_json(record)
    return _emit(args, doc, [_delivery_row(doc)])


def _hooks_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    page = run_use_cases(
        settings, lambda ctx: hooks.list_deliveries(ctx, args.id, limit=LIST_LIMIT)
    )
    docs = [shapes.delivery_json(d) for d in page.items]
    return _emit(args, docs, [_delivery_row(d) for d in docs])


def _hooks_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(
        settings, lambda ctx: hooks.redeliver(ctx, args.delivery_id, actor=ACTOR)
    )
    doc = shapes.delivery_json(record)
    return _emit(args, doc, [_delivery_row(doc)])
