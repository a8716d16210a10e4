"""The inventory's endpoint: how its URL, method, tags and text fields are written.

An endpoint is unique by (method, url). Input is validated and normalised
here, before anything stores it, so the same endpoint written two ways
(``HTTPS://API.acme.com:443`` and ``https://api.acme.com/``) is one endpoint:

- ``url``: absolute http(s), a host, no user name or password, no spaces or
  control characters, no fragment (browsers never send one); scheme and host
  lower-cased, an internationalised host in the browser's ASCII form (UTS #46,
  given as ``encode_host``), the scheme's default port dropped, an empty path
  becomes ``/``, non-ASCII characters in the path and query percent-encoded;
- ``method``: as the front end's ``fetch()`` sends it
  (:func:`scanner.core.browser.normalize_method`: ``get`` is ``GET``, but
  ``patch`` stays ``patch``); CONNECT, TRACE and TRACK, in any case, are
  refused (Fetch forbids them: no page can send them, so CORS never applies);
- ``tags``: lower-cased, ``[a-z0-9][a-z0-9._:/@+-]*``, at most 100 characters,
  sorted and de-duplicated;
- ``name``, ``owner``: one line of text; ``notes``: text with line breaks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from scanner.core.browser import normalize_method
from scanner.core.origin import HostEncoder, Origin, ascii_host_encoder, masked_url
from scanner.errors import FieldError, InputError, InvalidURL, ScannerError, ValidationError

# Field sizes: the database columns are made to these (scanner.db.tables).
METHOD_LENGTH = 16
NAME_LENGTH = 200
OWNER_LENGTH = 200
TAG_LENGTH = 100
MAX_URL_LENGTH = 2048  # longer URLs break proxies and btree indexes alike
MAX_NOTES_LENGTH = 10_000
MAX_TAGS = 50

ENDPOINT_FIELDS: tuple[str, ...] = ("method", "url", "name", "owner", "tags", "enabled", "notes")

# Fetch's forbidden methods, a byte-case-insensitive match.
FORBIDDEN_METHODS = frozenset({"CONNECT", "TRACE", "TRACK"})

_TAG = re.compile(r"[a-z0-9][a-z0-9._:/@+\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def endpoint_method(value: object) -> str:
    """The method an endpoint is stored with (see module docstring); ``InputError`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("expected an HTTP method such as GET")
    method = normalize_method(value.strip())
    if len(method) > METHOD_LENGTH:
        raise InputError(f"{value!r} is longer than {METHOD_LENGTH} characters")
    if method.upper() in FORBIDDEN_METHODS:
        raise InputError(f"{method} is a forbidden method: browsers never send it cross-origin")
    return method


def canonical_url(value: object, *, encode_host: HostEncoder = ascii_host_encoder) -> str:
    """The canonical form of an endpoint URL (see module docstring); ``InvalidURL`` otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidURL("expected an absolute http(s) URL such as https://api.example.com/v1")
    shown = masked_url(value)  # never echo a password back
    if len(value) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidURL(f"{shown!r}: a URL has no spaces or control characters (CR, LF, tab)")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidURL(f"{shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidURL(f"{shown!r}: expected an absolute http:// or https:// URL")
    if not parts.netloc or parts.netloc.startswith(":"):
        raise InvalidURL(f"{shown!r}: the URL has no host")
    if "@" in parts.netloc:
        raise InvalidURL(f"{shown!r}: remove the user name and password from the URL")
    if "#" in value:
        raise InvalidURL(f"{shown!r}: remove the #fragment (browsers never send it)")
    origin = Origin.from_url(value, encode_host=encode_host)
    netloc = origin.host if origin.port is None else f"{origin.host}:{origin.port}"

    def encode(text: str) -> str:
        return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), text)

    return urlunsplit((origin.scheme, netloc, encode(parts.path) or "/", encode(parts.query), ""))


def canonical_tag(value: object) -> str:
    """A tag, lower-cased. ``InputError`` when empty, too long, or with other characters."""
    if not isinstance(value, str):
        raise InputError(f"a tag is a string, not {type(value).__name__}")
    tag = value.strip().lower()
    if not tag:
        raise InputError("a tag cannot be empty")
    if len(tag) > TAG_LENGTH:
        raise InputError(f"tag {value!r} is longer than {TAG_LENGTH} characters")
    if not _TAG.match(tag):
        raise InputError(
            f"tag {value!r}: use letters, digits and . _ : / @ + -, starting with a letter or digit"
        )
    return tag


def canonical_tags(value: object) -> tuple[str, ...]:
    """A list of tags, each canonical, sorted and de-duplicated; ``InputError`` naming every bad one."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InputError("expected a list of tags")
    if len(value) > MAX_TAGS:
        raise InputError(f"at most {MAX_TAGS} tags, not {len(value)}")
    problems: list[str] = []
    tags: set[str] = set()
    for item in value:
        try:
            tags.add(canonical_tag(item))
        except InputError as exc:
            problems.append(exc.message)
    if problems:
        raise InputError("; ".join(problems))
    return tuple(sorted(tags))


def optional_text(value: object, limit: int, what: str) -> str | None:
    """Free text (line breaks allowed), trimmed; None when empty. ``InputError`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"expected text, not {type(value).__name__}")
    text = value.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InputError(f"the {what} is longer than {limit} characters")
    # Control characters other than line breaks and tabs (ESC, C1 controls) would drive
    # the terminal of whoever lists the inventory.
    if _TEXT_CONTROL.search(text):
        raise InputError(f"the {what} contains a control character")
    return text or None


def one_line(value: object, limit: int, what: str) -> str | None:
    """One line of text (a name, an owner); None when empty. ``InputError`` otherwise."""
    text = optional_text(value, limit, what)
    if text is not None and _CONTROL.search(text.replace(" ", "")):
        raise InputError(f"the {what} is one line: no line breaks, tabs or control characters")
    return text


def _enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected true or false, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class EndpointInput:
    """An endpoint's fields; built by :meth:`validate`, they are canonical."""

    method: str
    url: str
    name: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True
    notes: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What makes an endpoint unique: (method, url)."""
        return (self.method, self.url)

    @classmethod
    def validate(
        cls, values: Mapping[str, Any], *, encode_host: HostEncoder = ascii_host_encoder
    ) -> EndpointInput:
        """Validate and normalise every field; ``ValidationError`` lists every bad one.

        ``url`` is required; ``method`` defaults to GET. Unknown keys are errors.
        """
        errors = [FieldError(str(k), "unknown field") for k in values if k not in ENDPOINT_FIELDS]
        clean: dict[str, Any] = {}
        checks: dict[str, Any] = {
            "method": lambda v: endpoint_method("GET" if v is None else v),
            "url": lambda v: canonical_url(v, encode_host=encode_host),
            "name": lambda v: one_line(v, NAME_LENGTH, "name"),
            "owner": lambda v: one_line(v, OWNER_LENGTH, "owner"),
            "tags": canonical_tags,
            "enabled": _enabled,
            "notes": lambda v: optional_text(v, MAX_NOTES_LENGTH, "notes"),
        }
        for name, check in checks.items():
            if name not in values and name != "url":
                continue
            try:
                clean[name] = check(values.get(name))
            except ScannerError as exc:
                errors.append(FieldError(name, exc.message))
        if errors:
            raise ValidationError(errors)
        clean.setdefault("method", "GET")
        return cls(**clean)

    def as_mapping(self) -> dict[str, Any]:
        """The fields as a JSON-ready mapping (tags as a list)."""
        return {
            "method": self.method,
            "url": self.url,
            "name": self.name,
            "owner": self.owner,
            "tags": list(self.tags),
            "enabled": self.enabled,
            "notes": self.notes,
        }

    def changed(self, wanted: EndpointInput, given: frozenset[str]) -> list[str]:
        """The fields of ``given`` (other than the key) that ``wanted`` sets differently."""
        return [
            name
            for name in ENDPOINT_FIELDS
            if name in given
            and name not in ("method", "url")
            and getattr(self, name) != getattr(wanted, name)
        ]


__all__ = [
    "ENDPOINT_FIELDS",
    "FORBIDDEN_METHODS",
    "MAX_NOTES_LENGTH",
    "MAX_TAGS",
    "MAX_URL_LENGTH",
    "METHOD_LENGTH",
    "NAME_LENGTH",
    "OWNER_LENGTH",
    "TAG_LENGTH",
    "EndpointInput",
    "canonical_tag",
    "canonical_tags",
    "canonical_url",
    "endpoint_method",
    "one_line",
    "optional_text",
]
