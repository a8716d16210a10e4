"""`cors-scanner endpoints ...` and `cors-scanner policies ...`: the inventory from a shell.

Every write is recorded in the audit log with the actor ``cli``. ``--format``
chooses a table for people or JSON for scripts on the read commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scanner import shapes
from scanner.cli import EXIT_OK, EXIT_USAGE
from scanner.cli.database import run_use_cases
from scanner.cli.output import Column, Output, add_format_flag, record_pairs
from scanner.cli.paging import add_paging_flags, collect
from scanner.core.import_rows import ImportReport
from scanner.core.policy_layers import POLICY_FIELDS, PolicyScope
from scanner.db.inventory import EndpointFilter, EndpointRecord
from scanner.db.policies import PolicyRecord
from scanner.errors import InputError
from scanner.importers import ImportFormat, detect_format
from scanner.importers.export import EXPORT_FORMATS
from scanner.settings import Settings
from scanner.usecases import Context, inventory, policies

ACTOR = "cli"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_endpoints(subparsers)
    _register_policies(subparsers)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", help="only endpoints with this tag")
    parser.add_argument("--owner", help="only endpoints with this owner")
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--enabled",
        dest="enabled",
        action="store_const",
        const=True,
        help="only endpoints that scans include",
    )
    state.add_argument(
        "--disabled",
        dest="enabled",
        action="store_const",
        const=False,
        help="only endpoints left out of scans",
    )
    parser.add_argument("-q", "--search", help="text in the URL or the name (case-insensitive)")


def _filter(args: argparse.Namespace) -> EndpointFilter:
    return EndpointFilter(tag=args.tag, owner=args.owner, enabled=args.enabled, q=args.search)


def _register_endpoints(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "endpoints",
        help="manage the endpoint inventory (add, list, show, remove, import, export)",
        description="The endpoints to scan: method + URL, with name, owner, tags and notes.",
    )
    sub = p.add_subparsers(dest="endpoints_command", metavar="COMMAND", required=True)

    add = sub.add_parser("add", help="add one endpoint")
    add.add_argument("url", help="absolute http(s) URL")
    add.add_argument("--method", default="GET", help="HTTP method (default: GET)")
    add.add_argument("--name", help="a name people know it by, e.g. 'profile API'")
    add.add_argument("--owner", help="the team that owns it (filters, alerts, the dashboard)")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeat for more)")
    add.add_argument("--disabled", action="store_true", help="add it but leave it out of scans")
    add.add_argument("--notes", help="free text for whoever reads the inventory")
    add.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help=(
            "a request header the front end sends on every call (repeat for more): its name "
            "is asked for in the legitimate preflight, its value is sent on actual requests "
            "only and shown as [redacted] everywhere"
        ),
    )
    add_format_flag(add)
    add.set_defaults(handler=_endpoints_add)

    ls = sub.add_parser("list", help="list endpoints, a page at a time")
    _add_filters(ls)
    add_paging_flags(ls, "endpoints")
    add_format_flag(ls)
    ls.set_defaults(handler=_endpoints_list)

    show = sub.add_parser("show", help="show one endpoint and its policy override")
    show.add_argument("id", type=int, help="the endpoint's id (see `endpoints list`)")
    add_format_flag(show)
    show.set_defaults(handler=_endpoints_show)

    rm = sub.add_parser("remove", help="remove an endpoint (its scan history stays)")
    rm.add_argument("id", type=int, help="the endpoint's id (see `endpoints list`)")
    rm.set_defaults(handler=_endpoints_remove)

    imp = sub.add_parser(
        "import",
        help="create or update endpoints from CSV, JSON, YAML or OpenAPI 3",
        description=(
            "Upsert endpoints keyed by method + URL: a second import of the same file changes "
            "nothing. Rows with errors are reported (row and field) and skipped; the others "
            "are applied. Exit code 2 when any row had an error. CSV: the header names the "
            "columns (method,url,name,owner,tags,enabled,notes and the policy columns "
            "allowed_origins,allow_credentials,allowed_methods,allowed_headers,"
            "exposed_headers,max_age,public); separate tags and list values with ';' or '|'."
        ),
    )
    imp.add_argument("file", help="the file to import, or - for standard input")
    imp.add_argument(
        "--type",
        choices=[f.value for f in ImportFormat],
        help="the file's format (default: from its suffix; JSON/YAML with 'openapi' is OpenAPI)",
    )
    imp.add_argument(
        "--base-url", help="what relative OpenAPI server URLs are relative to (https://host)"
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="report what would change; write nothing"
    )
    add_format_flag(imp)
    imp.set_defaults(handler=_endpoints_import)

    exp = sub.add_parser("export", help="write endpoints as CSV, JSON or YAML (importable)")
    _add_filters(exp)
    exp.add_argument("--format", choices=EXPORT_FORMATS, default="csv", help="default: csv")
    exp.add_argument("-o", "--output", help="write to this file instead of standard output")
    exp.set_defaults(handler=_endpoints_export)


def _register_policies(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "policies",
        help="manage CORS policies (org default, per tag, per endpoint)",
        description=(
            "Policies say what each endpoint should allow. Layers, weakest first: built-in "
            "(nothing allowed) -> default -> tags -> endpoint. When tags disagree the "
            "strictest combination applies (origins: the intersection; booleans: true only "
            "if all agree; max-age: the smallest)."
        ),
    )
    sub = p.add_subparsers(dest="policies_command", metavar="COMMAND", required=True)

    ls = sub.add_parser("list", help="list every policy layer")
    add_format_flag(ls)
    ls.set_defaults(handler=_policies_list)

    show = sub.add_parser("show", help="show one policy layer")
    show.add_argument("id", type=int, help="the policy's id (see `policies list`)")
    add_format_flag(show)
    show.set_defaults(handler=_policies_show)

    put = sub.add_parser(
        "set",
        help="create or replace the layer of one scope (fields not given inherit)",
    )
    _add_scope(put)
    put.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        help="an origin or pattern such as https://*.acme.com (repeat for more)",
    )
    put.add_argument(
        "--no-allowed-origins",
        action="store_true",
        help="explicitly no cross-origin reader (instead of inheriting)",
    )
    put.add_argument(
        "--allow-credentials",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="front ends send credentials (cookies, Authorization): the server may allow them",
    )
    put.add_argument(
        "--allowed-method",
        action="append",
        dest="allowed_methods",
        metavar="METHOD",
        help="a method front ends use cross-origin (repeat)",
    )
    put.add_argument(
        "--allowed-header",
        action="append",
        dest="allowed_headers",
        metavar="NAME",
        help="a request header front ends send cross-origin (repeat)",
    )
    put.add_argument(
        "--exposed-header",
        action="append",
        dest="exposed_headers",
        metavar="NAME",
        help="a response header front ends may read (repeat)",
    )
    put.add_argument(
        "--max-age", type=int, metavar="SECONDS", help="the highest acceptable preflight max-age"
    )
    put.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="anyone may read without credentials ('*')",
    )
    add_format_flag(put)
    put.set_defaults(handler=_policies_set)

    unset = sub.add_parser("unset", help="remove the layer of one scope (it inherits again)")
    _add_scope(unset)
    unset.set_defaults(handler=_policies_unset)

    eff = sub.add_parser("effective", help="the policy an endpoint is judged by, with sources")
    eff.add_argument(
        "endpoint_id", type=int, metavar="ENDPOINT_ID", help="the endpoint (see `endpoints list`)"
    )
    add_format_flag(eff)
    eff.set_defaults(handler=_policies_effective)


def _add_scope(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--default", action="store_true", help="the org-wide default")
    scope.add_argument("--tag", help="the layer for endpoints with this tag")
    scope.add_argument("--endpoint", type=int, metavar="ID", help="one endpoint's override")


def _scope(args: argparse.Namespace) -> tuple[PolicyScope, str | None, int | None]:
    if args.default:
        return PolicyScope.DEFAULT, None, None
    if args.tag is not None:
        return PolicyScope.TAG, args.tag, None
    return PolicyScope.ENDPOINT, None, args.endpoint


# -- rendering -----------------------------------------------------------------

_ENDPOINT_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("METHOD", "method"),
    Column("URL", "url"),
    Column("NAME", "name"),
    Column("OWNER", "owner"),
    Column("TAGS", "tags"),
    Column("ENABLED", "enabled"),
)

_POLICY_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("SCOPE", lambda d: d["scope_key"]),
    Column("ALLOWED ORIGINS", lambda d: d["allowed_origins"]),
    Column("SETS", lambda d: d["sets"] or "nothing (inherits all)"),
)


# -- endpoints -----------------------------------------------------------------


def _endpoints_add(args: argparse.Namespace, settings: Settings) -> int:
    values = {
        "method": args.method,
        "url": args.url,
        "name": args.name,
        "owner": args.owner,
        "tags": args.tag,
        "enabled": not args.disabled,
        "notes": args.notes,
        "request_headers": args.header,
    }
    record = run_use_cases(
        settings, lambda ctx: inventory.create_endpoint(ctx, values, actor=ACTOR)
    )
    out = Output(settings)
    if args.format == "json":
        out.json(shapes.endpoint_json(record))
    else:
        out.line(f"added endpoint {record.id}: {record.method} {record.url}")
    return EXIT_OK


def _endpoints_list(args: argparse.Namespace, settings: Settings) -> int:
    flt = _filter(args)

    async def work(ctx: Context) -> tuple[list[EndpointRecord], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: inventory.list_endpoints(ctx, flt, limit=limit, cursor=cursor),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.endpoint_json(e) for e in items]
    Output(settings).listing(
        args.format, docs, _ENDPOINT_COLUMNS, empty="no endpoints match", next_cursor=cursor
    )
    return EXIT_OK


def _endpoints_show(args: argparse.Namespace, settings: Settings) -> int:
    view = run_use_cases(settings, lambda ctx: inventory.show_endpoint(ctx, args.id))
    record, override = view.endpoint, view.override
    doc = shapes.endpoint_json(record)
    doc["policy_override"] = None if override is None else shapes.policy_json(override)
    pairs = record_pairs(doc, skip=("policy_override",))
    pairs.append(("policy override", None if override is None else f"policy {override.id}"))
    if override is not None:
        pairs.extend(
            (f"  {k.replace('_', ' ')}", v)
            for k, v in override.fields.as_mapping().items()
            if v is not None
        )
    Output(settings).show(args.format, doc, pairs)
    return EXIT_OK


def _endpoints_remove(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(
        settings, lambda ctx: inventory.delete_endpoint(ctx, args.id, actor=ACTOR)
    )
    Output(settings).line(f"removed endpoint {record.id}: {record.method} {record.url}")
    return EXIT_OK


def read_import_file(name: str, max_bytes: int) -> bytes:
    """The bytes of ``name`` (``-``: standard input), refusing more than ``max_bytes``."""
    if name == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
    else:
        path = Path(name)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise InputError(
                    f"{name} is {size:,} bytes, over the {max_bytes:,}-byte import limit "
                    "(CORS_SCANNER_MAX_IMPORT_BYTES)"
                )
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(
            f"{name} is over the {max_bytes:,}-byte import limit (CORS_SCANNER_MAX_IMPORT_BYTES)"
        )
    return data


def _print_report(report: ImportReport) -> None:
    verb = "would be " if report.dry_run else ""
    for method, url in report.created:
        print(f"{'would create' if report.dry_run else 'created'}  {method} {url}")
    for change in report.changes:
        action = "would change" if report.dry_run else "changed"
        print(f"{action}  {change.method} {change.url}  ({', '.join(change.fields)})")
    for error in report.errors:
        print(f"error  {error}", file=sys.stderr)
    print(
        f"{len(report.created)} {verb}created, {len(report.changed)} {verb}changed, "
        f"{len(report.unchanged)} unchanged, {len(report.errors)} row error(s)"
        + (" (dry run: nothing written)" if report.dry_run else "")
    )


def _endpoints_import(args: argparse.Namespace, settings: Settings) -> int:
    fmt = ImportFormat(args.type or detect_format(filename=None if args.file == "-" else args.file))
    data = read_import_file(args.file, settings.max_import_bytes)
    report = run_use_cases(
        settings,
        lambda ctx: inventory.import_endpoints(
            ctx,
            data,
            fmt,
            actor=ACTOR,
            dry_run=args.dry_run,
            base_url=args.base_url,
            source=args.file,
        ),
    )
    if args.format == "json":
        Output(settings).json(shapes.import_report_json(report))
    else:
        _print_report(report)
    return EXIT_USAGE if report.errors else EXIT_OK


def _endpoints_export(args: argparse.Namespace, settings: Settings) -> int:
    flt = _filter(args)
    text, count = run_use_cases(
        settings, lambda ctx: inventory.export_endpoints(ctx, flt, args.format)
    )
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"exported {count} endpoint(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# -- policies ------------------------------------------------------------------


def _policy_row(p: PolicyRecord) -> dict[str, Any]:
    fields = p.fields.as_mapping()
    return {
        "id": p.id,
        "scope_key": p.scope_key,
        "allowed_origins": list(p.allowed_origins) if p.allowed_origins is not None else None,
        "sets": [k for k, v in fields.items() if v is not None],
    }


def _policies_list(args: argparse.Namespace, settings: Settings) -> int:
    items = run_use_cases(settings, policies.list_policies)
    out = Output(settings)
    if args.format == "json":
        out.listing("json", [shapes.policy_json(p) for p in items], _POLICY_COLUMNS, empty="")
        return EXIT_OK
    out.table(
        [_policy_row(p) for p in items],
        _POLICY_COLUMNS,
        empty="no policies: every endpoint is judged by the built-in policy "
        "(no cross-origin reader)",
    )
    return EXIT_OK


def _show_policy(settings: Settings, record: PolicyRecord, fmt: str) -> None:
    doc = shapes.policy_json(record)
    pairs: list[tuple[str, Any]] = [("id", record.id), ("scope", record.scope_key)]
    for name, value in record.fields.as_mapping().items():
        pairs.append((name.replace("_", " "), "(inherit)" if value is None else value))
    pairs += [("created at", doc["created_at"]), ("updated at", doc["updated_at"])]
    Output(settings).show(fmt, doc, pairs)


def _policies_show(args: argparse.Namespace, settings: Settings) -> int:
    _show_policy(
        settings,
        run_use_cases(settings, lambda ctx: policies.get_policy(ctx, args.id)),
        args.format,
    )
    return EXIT_OK


def _policies_set(args: argparse.Namespace, settings: Settings) -> int:
    scope, tag, endpoint_id = _scope(args)
    if args.no_allowed_origins and args.allowed_origins:
        raise InputError("--no-allowed-origins and --allowed-origin contradict each other")
    values: dict[str, Any] = {
        "allowed_origins": [] if args.no_allowed_origins else args.allowed_origins,
        "allow_credentials": args.allow_credentials,
        "allowed_methods": args.allowed_methods,
        "allowed_headers": args.allowed_headers,
        "exposed_headers": args.exposed_headers,
        "max_age": args.max_age,
        "public": args.public,
    }
    values = {k: v for k, v in values.items() if v is not None}
    record, created = run_use_cases(
        settings,
        lambda ctx: policies.set_policy(
            ctx, scope, tag=tag, endpoint_id=endpoint_id, values=values, actor=ACTOR
        ),
    )
    if args.format == "json":
        _show_policy(settings, record, "json")
    else:
        Output(settings).line(
            f"{'created' if created else 'replaced'} policy {record.id} ({record.scope_key})"
        )
    return EXIT_OK


def _policies_unset(args: argparse.Namespace, settings: Settings) -> int:
    scope, tag, endpoint_id = _scope(args)
    record = run_use_cases(
        settings,
        lambda ctx: policies.unset_policy(
            ctx, scope, tag=tag, endpoint_id=endpoint_id, actor=ACTOR
        ),
    )
    Output(settings).line(f"removed policy {record.id} ({record.scope_key})")
    return EXIT_OK


def _policies_effective(args: argparse.Namespace, settings: Settings) -> int:
    view = run_use_cases(settings, lambda ctx: inventory.show_endpoint(ctx, args.endpoint_id))
    endpoint, eff = view.endpoint, view.effective
    doc = shapes.effective_policy_json(endpoint.id, eff)
    out = Output(settings)
    if args.format == "json":
        out.json(doc)
        return EXIT_OK
    out.line(f"endpoint {endpoint.id}: {endpoint.method} {endpoint.url}")
    rows = [
        {"field": name, "value": doc["policy"][name], "source": eff.sources[name]}
        for name in POLICY_FIELDS
    ]
    out.table(rows, _EFFECTIVE_COLUMNS, empty="")
    return EXIT_OK


_EFFECTIVE_COLUMNS = (
    Column("FIELD", "field"),
    Column("VALUE", "value"),
    Column("SOURCE", "source"),
)
