"""Pagination over HTTP: the ``limit``/``cursor`` parameters, the ``next`` link, page shapes.

Every list answers ``{"items": [...], "next": "<relative URL>" | null}``;
following ``next`` (same filters, the new cursor) walks the whole list
without duplicates or gaps, however rows change in between (keyset
pagination, see ``scanner.db.pagination``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner.api.keys import SETTINGS
from scanner.api.schemas import MAX_ID, Arr, Call, Int, Obj, Param, Ref, Schema, Str
from scanner.db.pagination import decode_cursor
from scanner.errors import InputError


def _check_cursor(text: str) -> None:
    after = decode_cursor(text)
    if after is not None and after > MAX_ID:
        raise InputError("not a cursor this API returned")


LIMIT = Param(
    "limit",
    Int(minimum=1),
    "Items per page: default CORS_SCANNER_PAGE_SIZE, at most CORS_SCANNER_MAX_PAGE_SIZE.",
)
CURSOR = Param(
    "cursor",
    Str(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$", semantic=_check_cursor),
    "Where to continue: the cursor inside the previous page's `next` link (opaque).",
)
PAGE_PARAMS = (LIMIT, CURSOR)


def page_limit(call: Call) -> int:
    """The page size asked for, or the server's default."""
    settings = call.request.app[SETTINGS]
    return int(call.query.get("limit", settings.page_size))


def next_link(request: web.Request, cursor: str | None) -> str | None:
    """The relative URL of the next page: this request's filters with the new cursor."""
    if cursor is None:
        return None
    return str(request.rel_url.update_query(cursor=cursor))


def page_json(request: web.Request, items: list[Any], cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next": next_link(request, cursor)}


def page_schema(name: str, item: Schema) -> Ref:
    """The schema of one page of ``item``s."""
    return Ref(
        name=name,
        schema=Obj(
            properties={
                "items": Arr(items=item),
                "next": Str(
                    nullable=True,
                    description="Relative URL of the next page; null on the last page.",
                ),
            },
            required=frozenset({"items", "next"}),
        ),
    )
