"""`cors-scanner findings|regressions|hooks`: tracked findings, triage, regressions, alert hooks.

The command-line twin of ``/api/v1/findings``, ``/api/v1/regressions`` and
``/api/v1/hooks``: same store, same JSON shapes (``--format json``). Changes
are recorded in the audit log with the actor ``cli`` (or ``--by``). Hook
secrets are printed once, when they are made; never listed.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta
from typing import Any

from scanner import shapes
from scanner.cli import EXIT_OK
from scanner.cli.database import run_use_cases
from scanner.cli.output import Column, Output, add_format_flag, record_pairs
from scanner.cli.paging import add_paging_flags, collect
from scanner.core.severity import Severity
from scanner.core.timestamps import parse_iso
from scanner.db.findings import FindingQuery, FindingRecord, status_filter
from scanner.db.hooks import DeliveryRecord, DeliveryStatus, HookInput, HookKind
from scanner.errors import InputError
from scanner.settings import Settings
from scanner.usecases import Context, hooks, triage
from scanner.usecases.triage import Decision

ACTOR = "cli"
EXIT_FAILED = 1
_TEST_POLL_SECONDS = 0.2


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


def _register_findings(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "findings",
        help="tracked findings across runs: list, show, triage, history",
        description="One finding per fingerprint, across runs, with its triage and history.",
    )
    sub = p.add_subparsers(dest="findings_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="list tracked findings")
    listing.add_argument(
        "--status",
        help=(
            "comma-separated: open (= new+open+reopened, every live finding), new, "
            "reopened, resolved, suppressed (default: all)"
        ),
    )
    listing.add_argument(
        "--severity", metavar="SEVERITY", help="minimum severity: critical, high, medium, low, info"
    )
    listing.add_argument("--rule", metavar="RULE_ID", help="only this rule's (see docs/rules.md)")
    listing.add_argument("--endpoint", type=_id, metavar="ID", help="only this endpoint's")
    listing.add_argument("--tag", help="only findings of endpoints with this tag")
    listing.add_argument("--owner", help="only findings of endpoints with this owner")
    listing.add_argument("--run", type=_id, metavar="RUN_ID", help="only findings this run saw")
    listing.add_argument(
        "--first-seen-after",
        type=_time,
        metavar="TIME",
        help="only findings first seen at or after this ISO 8601 time (with a zone)",
    )
    listing.add_argument(
        "--last-seen-after",
        type=_time,
        metavar="TIME",
        help="only findings last seen at or after this ISO 8601 time (with a zone)",
    )
    add_paging_flags(listing, "findings")
    add_format_flag(listing)
    listing.set_defaults(handler=_findings_list)

    show = sub.add_parser("show", help="one finding")
    show.add_argument("id", type=_id, help="the finding's id (see `findings list`)")
    add_format_flag(show)
    show.set_defaults(handler=_findings_show)

    for name, what in (
        ("suppress", "a false positive or won't fix (optional --until)"),
        ("accept", "accept the risk until a date (--until required)"),
        ("reopen", "withdraw a suppression or acceptance"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("id", type=_id, help="the finding's id (see `findings list`)")
        cmd.add_argument(
            "--reason",
            required=name != "reopen",
            default="",
            help="why (kept in the finding's history and the audit log)",
        )
        cmd.add_argument("--by", default="cli", help="who decides (audit log; default cli)")
        if name != "reopen":
            expiry = cmd.add_mutually_exclusive_group(required=name == "accept")
            expiry.add_argument(
                "--until", type=_time, metavar="TIME", help="until this ISO 8601 time (with a zone)"
            )
            expiry.add_argument("--days", type=int, metavar="N", help="or: this many days from now")
        add_format_flag(cmd)
        cmd.set_defaults(handler=_findings_triage, triage=name)

    history = sub.add_parser("history", help="a finding's events, oldest first")
    history.add_argument("id", type=_id, help="the finding's id (see `findings list`)")
    add_format_flag(history)
    history.set_defaults(handler=_findings_history)


def _register_regressions(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("regressions", help="regressions found by runs")
    sub = p.add_subparsers(dest="regressions_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="regressions, newest first")
    listing.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="only at or after this ISO 8601 time (with a zone)",
    )
    listing.add_argument("--run", type=_id, metavar="RUN_ID", help="only this run's")
    add_paging_flags(listing, "regressions")
    add_format_flag(listing)
    listing.set_defaults(handler=_regressions_list)


def _register_hooks(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("hooks", help="alert hooks: webhook, Slack, PagerDuty")
    sub = p.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add a hook (a webhook's secret is printed once)")
    add.add_argument("name", help="what the hook is called (unique)")
    add.add_argument(
        "--kind",
        choices=("webhook", "slack", "pagerduty"),
        default="webhook",
        help="the receiver's kind (default webhook)",
    )
    add.add_argument("--url", help="the receiver (PagerDuty: the Events API by default)")
    add.add_argument("--secret", help="whsec_... (webhooks; generated when absent)")
    add.add_argument("--github-signature", action="store_true", help="add X-Hub-Signature-256")
    add.add_argument("--routing-key", help="PagerDuty integration key")
    add.add_argument(
        "--event-kind",
        action="append",
        default=[],
        metavar="KIND",
        help="only events of this kind, e.g. regression.new_finding (repeat; default: all)",
    )
    add.add_argument(
        "--min-severity", metavar="SEVERITY", help="only events at or above this severity"
    )
    add.add_argument(
        "--tag", action="append", default=[], help="only events of endpoints with this tag (repeat)"
    )
    add.add_argument(
        "--owner",
        action="append",
        default=[],
        help="only events of endpoints with this owner (repeat)",
    )
    add_format_flag(add)
    add.set_defaults(handler=_hooks_add)

    listing = sub.add_parser("list", help="list hooks (never their secrets)")
    add_format_flag(listing)
    listing.set_defaults(handler=_hooks_list)

    for name, handler, what in (
        ("show", _hooks_show, "one hook"),
        ("remove", _hooks_remove, "remove a hook and its delivery log"),
        ("test", _hooks_test, "send a hook.test event and wait for its outcome"),
        ("deliveries", _hooks_deliveries, "a hook's deliveries and attempts, newest first"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("id", type=_id, help="the hook's id (see `hooks list`)")
        if name == "deliveries":
            add_paging_flags(cmd, "deliveries")
        if name == "test":
            cmd.description = (
                "Queue a hook.test event for this hook and wait until the dispatcher "
                "(`serve` or `worker`) has tried it, then print the outcome. Exit code 0: "
                "delivered; 1: the receiver refused it, or nothing tried it within --timeout."
            )
            cmd.add_argument(
                "--timeout",
                type=float,
                default=30.0,
                metavar="SECONDS",
                help="how long to wait for the first attempt (default 30; 0: do not wait)",
            )
        add_format_flag(cmd)
        cmd.set_defaults(handler=handler)

    redeliver = sub.add_parser("redeliver", help="send a delivery again (same webhook-id)")
    redeliver.add_argument(
        "delivery_id", type=_id, help="the delivery's id (see `hooks deliveries`)"
    )
    add_format_flag(redeliver)
    redeliver.set_defaults(handler=_hooks_redeliver)


# -- tables ----------------------------------------------------------------------

_FINDING_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("SEVERITY", "severity", severity=True),
    Column("STATUS", "status"),
    Column("RULE", "rule_id"),
    Column("ENDPOINT", "endpoint_id", align="right"),
    Column("FIRST SEEN", "first_seen_at"),
    Column("LAST SEEN", "last_seen_at"),
    Column("VERIFIED", "verified"),
)

_EVENT_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("AT", "at"),
    Column("KIND", "kind"),
    Column("SEVERITY", "severity", severity=True),
    Column("RULE", "rule_id"),
    Column("ENDPOINT", "endpoint_id", align="right"),
    Column("RUN", "run_id", align="right"),
    Column("FINDING", "finding_id", align="right"),
)

_HOOK_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("NAME", "name"),
    Column("KIND", "kind"),
    Column("URL", "url"),
    Column("EVENTS", lambda d: d["event_kinds"] or "all"),
    Column("MIN SEVERITY", "min_severity"),
    Column(
        "FILTERS", lambda d: {k: v for k, v in (("tag", d["tags"]), ("owner", d["owners"])) if v}
    ),
    Column("STATE", lambda d: _hook_state(d)),
)


def _last_attempt(doc: dict[str, Any]) -> dict[str, Any] | None:
    return doc["attempt_log"][-1] if doc["attempt_log"] else None


_DELIVERY_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("EVENT", "event_type"),
    Column("STATUS", "status"),
    Column("ATTEMPTS", "attempts", align="right"),
    Column("LAST HTTP", lambda d: (_last_attempt(d) or {}).get("status")),
    Column("CREATED", "created_at"),
    Column("NEXT ATTEMPT", "next_attempt_at"),
    Column("DELIVERED", "delivered_at"),
    Column("LAST ERROR", "last_error"),
)


def _hook_state(doc: dict[str, Any]) -> str:
    if doc["enabled"]:
        return "enabled"
    return f"disabled ({doc['disabled_reason'] or 'by a user'})"


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

    async def work(ctx: Context) -> tuple[list[FindingRecord], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: triage.list_findings(ctx, q, limit=limit, cursor=cursor),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.finding_json(f) for f in items]
    Output(settings).listing(
        args.format, docs, _FINDING_COLUMNS, empty="no findings match", next_cursor=cursor
    )
    return EXIT_OK


def _findings_show(args: argparse.Namespace, settings: Settings) -> int:
    doc = shapes.finding_json(run_use_cases(settings, lambda ctx: triage.get_finding(ctx, args.id)))
    Output(settings).show(args.format, doc, record_pairs(doc))
    return EXIT_OK


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
    Output(settings).show(args.format, doc, record_pairs(doc))
    return EXIT_OK


def _findings_history(args: argparse.Namespace, settings: Settings) -> int:
    history = run_use_cases(settings, lambda ctx: triage.finding_history(ctx, args.id))
    doc = shapes.history_json(history.finding, history.events)
    out = Output(settings)
    if args.format == "json":
        out.json(doc)
        return EXIT_OK
    f = doc["finding"]
    out.line(f"finding {f['id']}: {f['severity']} {f['rule_id']} on endpoint {f['endpoint_id']}")
    out.table(doc["events"], _EVENT_COLUMNS, empty="no events")
    return EXIT_OK


def _regressions_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(ctx: Context) -> tuple[list[Any], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: triage.list_regressions(
                ctx, since=args.since, run_id=args.run, limit=limit, cursor=cursor
            ),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.event_json(e) for e in items]
    Output(settings).listing(
        args.format, docs, _EVENT_COLUMNS, empty="no regressions", next_cursor=cursor
    )
    return EXIT_OK


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
    doc = shapes.hook_json(made.hook, secret=made.secret, full_url=True)
    out = Output(settings)
    if args.format == "json":
        out.json(doc)
        return EXIT_OK
    out.line(f"added hook {doc['id']} {doc['name']!r} ({doc['kind']}): {doc['url']}")
    if "secret" in doc:
        out.line(f"Its signing secret, shown only once:\n\n    {doc['secret']}\n")
    return EXIT_OK


def _hooks_list(args: argparse.Namespace, settings: Settings) -> int:
    docs = [shapes.hook_json(h, full_url=True) for h in run_use_cases(settings, hooks.list_hooks)]
    Output(settings).listing(args.format, docs, _HOOK_COLUMNS, empty="no hooks")
    return EXIT_OK


def _hooks_show(args: argparse.Namespace, settings: Settings) -> int:
    doc = shapes.hook_json(
        run_use_cases(settings, lambda ctx: hooks.get_hook(ctx, args.id)), full_url=True
    )
    Output(settings).show(args.format, doc, record_pairs(doc))
    return EXIT_OK


def _hooks_remove(args: argparse.Namespace, settings: Settings) -> int:
    run_use_cases(settings, lambda ctx: hooks.delete_hook(ctx, args.id, actor=ACTOR))
    out = Output(settings)
    if args.format == "json":
        out.json({"id": args.id, "removed": True})
    else:
        out.line(f"hook {args.id} removed")
    return EXIT_OK


def _delivery_message(out: Output, fmt: str, doc: dict[str, Any], verb: str) -> None:
    if fmt == "json":
        out.json(doc)
    else:
        out.line(
            f"delivery {doc['id']} ({doc['event_type']}) {verb} for hook {doc['hook_id']}: "
            "the dispatcher (serve or worker) sends it; see `hooks deliveries "
            f"{doc['hook_id']}`"
        )


def _hooks_test(args: argparse.Namespace, settings: Settings) -> int:
    async def work(ctx: Context) -> tuple[DeliveryRecord, bool]:
        record = await hooks.send_test_event(ctx, args.id, actor=ACTOR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(args.timeout, 0.0)
        # The dispatcher of a running service sends it; its first attempt is the answer.
        while not record.attempt_log and loop.time() < deadline:
            await asyncio.sleep(min(_TEST_POLL_SECONDS, max(deadline - loop.time(), 0.0)))
            record = await hooks.get_delivery(ctx, record.id)
        return record, bool(record.attempt_log)

    record, tried = run_use_cases(settings, work)
    doc = shapes.delivery_json(record)
    out = Output(settings)
    if args.timeout <= 0:
        _delivery_message(out, args.format, doc, "queued")
        return EXIT_OK
    delivered = record.status is DeliveryStatus.DELIVERED
    if args.format == "json":
        out.json(doc)
    elif not tried:
        out.line(
            f"delivery {record.id} to hook {record.hook_id} was not tried within "
            f"{args.timeout:g} s: is a dispatcher running (`cors-scanner serve` or "
            "`cors-scanner worker` on this database)? It stays queued; see "
            f"`hooks deliveries {record.hook_id}`"
        )
    else:
        last = record.attempt_log[-1]
        answer = f"HTTP {last.status}" if last.status is not None else (last.error or "no answer")
        verdict = "delivered" if delivered else "FAILED"
        out.line(
            f"delivery {record.id} to hook {record.hook_id}: {verdict} "
            f"({answer}, {last.duration_ms:.0f} ms): {last.reason}"
        )
        if not delivered:
            detail = last.error_detail or last.response_excerpt
            if detail:
                out.line(f"  {detail[:300]}")
            out.line(
                f"  delivery status: {record.status.value}; see `hooks deliveries {record.hook_id}`"
            )
    return EXIT_OK if delivered else EXIT_FAILED


def _hooks_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    async def work(ctx: Context) -> tuple[list[Any], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: hooks.list_deliveries(ctx, args.id, limit=limit, cursor=cursor),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.delivery_json(d) for d in items]
    Output(settings).listing(
        args.format, docs, _DELIVERY_COLUMNS, empty="no deliveries", next_cursor=cursor
    )
    return EXIT_OK


def _hooks_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(
        settings, lambda ctx: hooks.redeliver(ctx, args.delivery_id, actor=ACTOR)
    )
    _delivery_message(Output(settings), args.format, shapes.delivery_json(record), "queued again")
    return EXIT_OK
