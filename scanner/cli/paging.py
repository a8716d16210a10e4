"""``--limit``/``--cursor``/``--all`` on every list command that reads a paged use case.

The command line pages the way the REST API does (keyset cursors from
``scanner.db.pagination``): one page of ``--limit`` (default
``CORS_SCANNER_PAGE_SIZE``), ``--cursor`` to continue where a page ended, or
``--all`` to walk every page. A page that is not the last says how to get the
next one (``scanner.cli.output.Output.listing``).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

from scanner.db.pagination import Page
from scanner.errors import InputError
from scanner.settings import Settings

T = TypeVar("T")


def add_paging_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """The three paging flags, with help naming ``what`` is listed."""
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"{what} per page (default CORS_SCANNER_PAGE_SIZE, at most CORS_SCANNER_MAX_PAGE_SIZE)",
    )
    parser.add_argument(
        "--cursor", metavar="CURSOR", help="continue after the page that printed this cursor"
    )
    parser.add_argument("--all", action="store_true", help="every page, not just the first")


def page_limit(args: argparse.Namespace, settings: Settings) -> int:
    """The page size asked for (``--limit``) or the default; ``InputError`` out of range."""
    limit = args.limit if args.limit is not None else settings.page_size
    if not 1 <= limit <= settings.max_page_size:
        raise InputError(f"--limit must be from 1 to {settings.max_page_size}")
    return limit


async def collect(
    args: argparse.Namespace,
    settings: Settings,
    fetch: Callable[[int, str | None], Awaitable[Page[T]]],
) -> tuple[list[T], str | None]:
    """The items of one page (or of every page with ``--all``) and the cursor after them."""
    limit = page_limit(args, settings)
    items: list[T] = []
    cursor: str | None = args.cursor
    while True:
        page = await fetch(limit, cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not args.all or cursor is None:
            return items, cursor
