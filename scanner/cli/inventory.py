"""`cors-scanner endpoints ...` and `cors-scanner policies ...`: the inventory from a shell.

Every write is recorded in the audit log with the actor ``cli``. ``--format``
chooses a table for people or JSON for scripts on the read commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from scanner.cli import EXIT_OK, EXIT_USAGE
from scanner.cli.database import run_with_database
from scanner.db import audit
from scanner.db.engine import Database
from scanner.db.inventory import (
    EndpointFilter,
    EndpointInput,
    EndpointRecord,
    ImportReport,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
    upsert_endpoints,
)
from scanner.db.policies import (
    POLICY_FIELDS,
    EffectivePolicy,
    PolicyRecord,
    PolicyScope,
    delete_policy,
    effective_policy,
    endpoint_overrides,
    find_policy,
    get_policy,
    list_policies,
    put_policy,
    scope_key,
)
from scanner.errors import InputError, NotFound
from scanner.importers import ImportFormat, ParsedImport, detect_format, parse_import
from scanner.importers.export import EXPORT_FORMATS, export_endpoints
from scanner.settings import Settings

ACTOR = "cli"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_endpoints(subparsers)
    _register_policies(subparsers)


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default: table)"
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", help="only endpoints with this tag")
    parser.add_argument("--owner", help="only endpoints with this owner")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)
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
    add.add_argument("--name")
    add.add_argument("--owner")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeat for more)")
    add.add_argument("--disabled", action="store_true", help="add it but leave it out of scans")
    add.add_argument("--notes")
    _add_format(add)
    add.set_defaults(handler=_endpoints_add)

    ls = sub.add_parser("list", help="list endpoints, a page at a time")
    _add_filters(ls)
    ls.add_argument("--limit", type=int, help="page size (default: CORS_SCANNER_PAGE_SIZE)")
    ls.add_argument("--cursor", help="continue after the page that printed this cursor")
    ls.add_argument("--all", action="store_true", help="every page, not just the first")
    _add_format(ls)
    ls.set_defaults(handler=_endpoints_list)

    show = sub.add_parser("show", help="show one endpoint and its policy override")
    show.add_argument("id", type=int)
    _add_format(show)
    show.set_defaults(handler=_endpoints_show)

    rm = sub.add_parser("remove", help="remove an endpoint (its scan history stays)")
    rm.add_argument("id", type=int)
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
    _add_format(imp)
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
    _add_format(ls)
    ls.set_defaults(handler=_policies_list)

    show = sub.add_parser("show", help="show one policy layer")
    show.add_argument("id", type=int)
    _add_format(show)
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
    put.add_argument("--allow-credentials", action=argparse.BooleanOptionalAction, default=None)
    put.add_argument("--allowed-method", action="append", dest="allowed_methods")
    put.add_argument("--allowed-header", action="append", dest="allowed_headers")
    put.add_argument("--exposed-header", action="append", dest="exposed_headers")
    put.add_argument("--max-age", type=int, help="seconds")
    put.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="anyone may read without credentials ('*')",
    )
    _add_format(put)
    put.set_defaults(handler=_policies_set)

    unset = sub.add_parser("unset", help="remove the layer of one scope (it inherits again)")
    _add_scope(unset)
    unset.set_defaults(handler=_policies_unset)

    eff = sub.add_parser("effective", help="the policy an endpoint is judged by, with sources")
    eff.add_argument("endpoint_id", type=int)
    _add_format(eff)
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


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def endpoint_json(e: EndpointRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "method": e.method,
        "url": e.url,
        "name": e.name,
        "owner": e.owner,
        "tags": list(e.tags),
        "enabled": e.enabled,
        "notes": e.notes,
        "created_at": _when(e.created_at),
        "updated_at": _when(e.updated_at),
    }


def policy_json(p: PolicyRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": p.id,
        "scope": p.scope.value,
        "tag": p.tag,
        "endpoint_id": p.endpoint_id,
    }
    doc.update(p.fields.as_mapping())
    doc["created_at"] = _when(p.created_at)
    doc["updated_at"] = _when(p.updated_at)
    return doc


def effective_json(endpoint: EndpointRecord, eff: EffectivePolicy) -> dict[str, Any]:
    policy = eff.policy
    values = {
        "allowed_origins": [str(o) for o in policy.allowed_origins],
        "allow_credentials": policy.allow_credentials,
        "allowed_methods": list(policy.allowed_methods),
        "allowed_headers": list(policy.allowed_headers),
        "exposed_headers": list(policy.exposed_headers),
        "max_age": policy.max_age,
        "public": policy.public,
    }
    return {
        "endpoint_id": endpoint.id,
        "policy": values,
        "sources": dict(eff.sources),
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) if value else "(none)"
    return str(value).replace("\n", " ")


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def _endpoint_rows(items: Sequence[EndpointRecord]) -> list[list[str]]:
    return [
        [
            str(e.id),
            e.method,
            e.url,
            _text(e.name),
            _text(e.owner),
            ",".join(e.tags) or "-",
            "yes" if e.enabled else "no",
        ]
        for e in items
    ]


_ENDPOINT_HEADERS = ("id", "method", "url", "name", "owner", "tags", "enabled")


def _print_details(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {_text(value)}")


# -- endpoints -----------------------------------------------------------------


def _endpoints_add(args: argparse.Namespace, settings: Settings) -> int:
    data = EndpointInput.validate(
        {
            "method": args.method,
            "url": args.url,
            "name": args.name,
            "owner": args.owner,
            "tags": args.tag,
            "enabled": not args.disabled,
            "notes": args.notes,
        }
    )

    async def work(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await create_endpoint(s, data)
            await audit.record(
                s,
                actor=ACTOR,
                action="endpoint.create",
                target_type="endpoint",
                target_id=str(record.id),
                detail=endpoint_json(record),
            )
        if args.format == "json":
            _print_json(endpoint_json(record))
        else:
            print(f"added endpoint {record.id}: {record.method} {record.url}")
        return EXIT_OK

    return run_with_database(settings, work)


def _endpoints_list(args: argparse.Namespace, settings: Settings) -> int:
    limit = args.limit if args.limit is not None else settings.page_size
    if not 1 <= limit <= settings.max_page_size:
        raise InputError(f"--limit must be from 1 to {settings.max_page_size}")
    flt = _filter(args)

    async def work(db: Database) -> int:
        items: list[EndpointRecord] = []
        cursor = args.cursor
        async with db.session() as s:
            while True:
                page = await list_endpoints(s, flt, limit=limit, cursor=cursor)
                items.extend(page.items)
                cursor = page.next_cursor
                if not args.all or cursor is None:
                    break
        if args.format == "json":
            _print_json({"items": [endpoint_json(e) for e in items], "next_cursor": cursor})
            return EXIT_OK
        if items:
            print(_table(_ENDPOINT_HEADERS, _endpoint_rows(items)))
        else:
            print("no endpoints match")
        if cursor is not None:
            print(f"more: --cursor {cursor}  (or --all)", file=sys.stderr)
        return EXIT_OK

    return run_with_database(settings, work)


def _endpoints_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.session() as s:
            record = await get_endpoint(s, args.id)
            override = (await endpoint_overrides(s, [record.id])).get(record.id)
        if args.format == "json":
            doc = endpoint_json(record)
            doc["policy_override"] = None if override is None else policy_json(override)
            _print_json(doc)
            return EXIT_OK
        pairs: list[tuple[str, Any]] = [(k, v) for k, v in endpoint_json(record).items()]
        pairs.append(("policy override", "-" if override is None else f"policy {override.id}"))
        if override is not None:
            pairs.extend(
                (f"  {k}", v) for k, v in override.fields.as_mapping().items() if v is not None
            )
        _print_details(pairs)
        return EXIT_OK

    return run_with_database(settings, work)


def _endpoints_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await get_endpoint(s, args.id)
            await delete_endpoint(s, record.id)
            await audit.record(
                s,
                actor=ACTOR,
                action="endpoint.delete",
                target_type="endpoint",
                target_id=str(record.id),
                detail={"method": record.method, "url": record.url},
            )
        print(f"removed endpoint {record.id}: {record.method} {record.url}")
        return EXIT_OK

    return run_with_database(settings, work)


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


def report_json(report: ImportReport) -> dict[str, Any]:
    """An import report as JSON (the CLI's ``--format json``)."""

    def keys(items: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"method": m, "url": u} for m, u in items]

    return {
        "dry_run": report.dry_run,
        "created": keys(report.created),
        "changed": [
            {"method": c.method, "url": c.url, "fields": list(c.fields)} for c in report.changes
        ],
        "unchanged": keys(report.unchanged),
        "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in report.errors],
    }


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
    fmt = args.type or detect_format(filename=None if args.file == "-" else args.file)
    data = read_import_file(args.file, settings.max_import_bytes)
    parsed: ParsedImport = parse_import(
        data, fmt, max_bytes=settings.max_import_bytes, base_url=args.base_url
    )

    async def work(db: Database) -> int:
        async with db.session() as s, s.begin():
            report = await upsert_endpoints(s, parsed.rows, dry_run=args.dry_run)
            if not args.dry_run and (report.created or report.changed):
                await audit.record(
                    s,
                    actor=ACTOR,
                    action="endpoint.import",
                    target_type="endpoint",
                    target_id=None,
                    detail={
                        "file": args.file,
                        "format": str(fmt),
                        "created": len(report.created),
                        "changed": len(report.changed),
                        "unchanged": len(report.unchanged),
                        "errors": len(report.errors) + len(parsed.errors),
                    },
                )
        merged = ImportReport(
            created=report.created,
            changed=report.changed,
            unchanged=report.unchanged,
            errors=tuple(sorted((*parsed.errors, *report.errors), key=lambda e: e.row)),
            changes=report.changes,
            dry_run=report.dry_run,
            created_ids=report.created_ids,
        )
        if args.format == "json":
            _print_json(report_json(merged))
        else:
            _print_report(merged)
        return EXIT_USAGE if merged.errors else EXIT_OK

    return run_with_database(settings, work)


def _endpoints_export(args: argparse.Namespace, settings: Settings) -> int:
    flt = _filter(args)

    async def work(db: Database) -> int:
        items: list[EndpointRecord] = []
        cursor: str | None = None
        async with db.session() as s:
            while True:
                page = await list_endpoints(s, flt, limit=1000, cursor=cursor)
                items.extend(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            overrides = await endpoint_overrides(s, [e.id for e in items])
        out.append(export_endpoints(items, overrides, args.format))
        counts.append(len(items))
        return EXIT_OK

    out: list[str] = []
    counts: list[int] = []
    code = run_with_database(settings, work)
    if args.output:
        try:
            Path(args.output).write_text(out[0], encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"exported {counts[0]} endpoint(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out[0])
    return code


# -- policies ------------------------------------------------------------------


def _policy_rows(items: Sequence[PolicyRecord]) -> list[list[str]]:
    rows = []
    for p in items:
        scope = p.scope_key
        set_fields = [k for k, v in p.fields.as_mapping().items() if v is not None]
        rows.append(
            [
                str(p.id),
                scope,
                _text(list(p.allowed_origins) if p.allowed_origins is not None else None),
                ", ".join(set_fields) or "(inherits all)",
            ]
        )
    return rows


def _policies_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.session() as s:
            items = await list_policies(s)
        if args.format == "json":
            _print_json({"items": [policy_json(p) for p in items]})
        elif items:
            print(_table(("id", "scope", "allowed origins", "sets"), _policy_rows(items)))
        else:
            print(
                "no policies: every endpoint is judged by the built-in policy (no cross-origin reader)"
            )
        return EXIT_OK

    return run_with_database(settings, work)


def _show_policy(record: PolicyRecord, fmt: str) -> None:
    if fmt == "json":
        _print_json(policy_json(record))
        return
    pairs: list[tuple[str, Any]] = [("id", record.id), ("scope", record.scope_key)]
    for name, value in record.fields.as_mapping().items():
        pairs.append((name, "(inherit)" if value is None else value))
    pairs += [("created_at", _when(record.created_at)), ("updated_at", _when(record.updated_at))]
    _print_details(pairs)


def _policies_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.session() as s:
            record = await get_policy(s, args.id)
        _show_policy(record, args.format)
        return EXIT_OK

    return run_with_database(settings, work)


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

    async def work(db: Database) -> int:
        async with db.session() as s, s.begin():
            record, created = await put_policy(
                s, scope, tag=tag, endpoint_id=endpoint_id, fields=values
            )
            await audit.record(
                s,
                actor=ACTOR,
                action="policy.create" if created else "policy.replace",
                target_type="policy",
                target_id=str(record.id),
                detail=policy_json(record),
            )
        if args.format == "json":
            _show_policy(record, "json")
        else:
            print(f"{'created' if created else 'replaced'} policy {record.id} ({record.scope_key})")
        return EXIT_OK

    return run_with_database(settings, work)


def _policies_unset(args: argparse.Namespace, settings: Settings) -> int:
    scope, tag, endpoint_id = _scope(args)

    async def work(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await find_policy(s, scope, tag=tag, endpoint_id=endpoint_id)
            if record is None:
                key = scope_key(scope, tag=tag, endpoint_id=endpoint_id)
                raise NotFound(f"there is no {key} policy")
            await delete_policy(s, record.id)
            await audit.record(
                s,
                actor=ACTOR,
                action="policy.delete",
                target_type="policy",
                target_id=str(record.id),
                detail={"scope": record.scope_key},
            )
        print(f"removed policy {record.id} ({record.scope_key})")
        return EXIT_OK

    return run_with_database(settings, work)


def _policies_effective(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.session() as s:
            endpoint = await get_endpoint(s, args.endpoint_id)
            eff = await effective_policy(s, endpoint)
        doc = effective_json(endpoint, eff)
        if args.format == "json":
            _print_json(doc)
            return EXIT_OK
        print(f"endpoint {endpoint.id}: {endpoint.method} {endpoint.url}")
        rows = [[name, _text(doc["policy"][name]), eff.sources[name]] for name in POLICY_FIELDS]
        print(_table(("field", "value", "source"), rows))
        return EXIT_OK

    return run_with_database(settings, work)
