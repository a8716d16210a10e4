"""Keyset pagination: pages ordered by a row id, continued by an opaque cursor.

A cursor names the last id a page returned, so pages stay exact while rows
are inserted or deleted between requests: no row is returned twice and no
row that existed for the whole walk is skipped (an offset would do both).
Cursors are opaque to clients (base64url of a small versioned JSON) so the
encoding can change without breaking them on a new version.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from scanner.errors import InputError

T = TypeVar("T")

_VERSION = 1
_MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    """The cursor that continues after the row with id ``last_id``."""
    raw = json.dumps({"v": _VERSION, "after": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor continues after; None for no cursor. ``InputError`` when forged or stale."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise InputError("invalid cursor: use the one the previous page returned")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InputError("invalid cursor: use the one the previous page returned") from None
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        raise InputError("invalid cursor: use the one the previous page returned")
    after = data.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise InputError("invalid cursor: use the one the previous page returned")
    return after


def check_limit(limit: int) -> int:
    """A page size must be a whole number from 1; callers cap it with their own maximum."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InputError(f"limit must be a whole number from 1, not {limit!r}")
    return limit
