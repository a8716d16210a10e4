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
- ``name``, ``owner``: one line of text; ``notes``: text with line breaks;
- ``request_headers``: the request headers the front end sets on every call
  (an API key, ``Content-Type: application/json``), as ``{name: value}``.
  Their names take part in the legitimate preflight (a browser asks for them
  in ``Access-Control-Request-Headers``); their values are secrets, sent only
  on actual requests and shown everywhere else as ``[redacted]``. Because
  every output shows ``[redacted]``, a ``[redacted]`` value given back (a
  PATCH of what GET returned, an import of an export) means "keep the stored
  value of this header" (:meth:`EndpointInput.with_stored_headers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from scanner.core.browser import normalize_method
from scanner.core.headers import REDACTED
from scanner.core.origin import HostEncoder, Origin, ascii_host_encoder, masked_url
from scanner.errors import (
    FieldError,
    InputError,
    InvalidHeader,
    InvalidURL,
    ScannerError,
    ValidationError,
)

# Field sizes: the database columns are made to these (scanner.db.tables).
METHOD_LENGTH = 16
NAME_LENGTH = 200
OWNER_LENGTH = 200
TAG_LENGTH = 100
MAX_URL_LENGTH = 2048  # longer URLs break proxies and btree indexes alike
MAX_NOTES_LENGTH = 10_000
MAX_TAGS = 50
MAX_REQUEST_HEADERS = 20
MAX_REQUEST_HEADER_VALUE = 8192  # a typical server's limit for one header line

ENDPOINT_FIELDS: tuple[str, ...] = (
    "method",
    "url",
    "name",
    "owner",
    "tags",
    "enabled",
    "notes",
    "request_headers",
)

# Headers the prober owns: a user-supplied copy would make the probe lie.
RESERVED_REQUEST_HEADERS = frozenset(
    {"origin", "host", "content-length", "transfer-encoding", "connection"}
    | {"access-control-request-method", "access-control-request-headers"}
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")

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


def request_header(name: object, value: object, *, allow_reserved: bool = False) -> tuple[str, str]:
    """One front-end request header, checked for the wire; ``InvalidHeader`` otherwise.

    The name keeps the case it was given (it is sent as written); the value is
    stripped of surrounding spaces, as an HTTP parser would.
    """
    if not isinstance(name, str) or not _HEADER_NAME.match(name.strip()):
        raise InvalidHeader(f"{name!r} is not a valid header name")
    if not isinstance(value, str):
        raise InvalidHeader(f"{name}: the value must be a string")
    name, value = name.strip(), value.strip()
    if any(c in value for c in "\r\n\0"):
        raise InvalidHeader(f"{name}: a header value cannot contain CR, LF or NUL")
    if len(value) > MAX_REQUEST_HEADER_VALUE:
        raise InvalidHeader(
            f"{name}: the value is longer than {MAX_REQUEST_HEADER_VALUE} characters"
        )
    if not allow_reserved and name.lower() in RESERVED_REQUEST_HEADERS:
        raise InvalidHeader(f"{name}: the scanner sets this header itself")
    return name, value


def parse_header_line(text: str, *, allow_reserved: bool = False) -> tuple[str, str]:
    """``'Name: value'`` → (name, value), refusing what cannot go on the wire."""
    name, sep, value = text.partition(":")
    if not sep or not _HEADER_NAME.match(name.strip()):
        raise InvalidHeader(f"{text!r}: expected 'Name: value' with a valid header name")
    return request_header(name, value, allow_reserved=allow_reserved)


def canonical_request_headers(value: object) -> tuple[tuple[str, str], ...]:
    """An endpoint's request headers: ``{name: value}`` (null: none), or a list of
    ``"Name: value"`` lines. A name given twice (in any case) is an error: which
    value the front end sends would be a guess."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs = [request_header(n, v) for n, v in value.items()]
    elif isinstance(value, list | tuple):
        pairs = []
        for item in value:
            if isinstance(item, str):
                pairs.append(parse_header_line(item))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append(request_header(item[0], item[1]))
            else:
                raise InvalidHeader(f"{item!r}: expected 'Name: value'")
    else:
        raise InvalidHeader(
            'expected an object of header names and values, e.g. {"X-Api-Key": "…"}'
        )
    if len(pairs) > MAX_REQUEST_HEADERS:
        raise InvalidHeader(f"at most {MAX_REQUEST_HEADERS} request headers")
    seen: set[str] = set()
    for name, _ in pairs:
        if name.lower() in seen:
            raise InvalidHeader(f"{name} is given twice")
        seen.add(name.lower())
    return tuple(pairs)


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
    # (name, value) pairs; values are secrets (see the module docstring).
    request_headers: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What makes an endpoint unique: (method, url)."""
        return (self.method, self.url)

    @property
    def public_request_headers(self) -> dict[str, str]:
        """The request headers as every output shows them: names, values redacted."""
        return {name: REDACTED for name, _ in self.request_headers}

    def with_stored_headers(self, stored: tuple[tuple[str, str], ...]) -> EndpointInput:
        """These fields with each ``[redacted]`` header value replaced by the ``stored``
        value of the same name; ``InputError`` when there is none to keep."""
        if not any(v == REDACTED for _, v in self.request_headers):
            return self
        kept = {n.lower(): v for n, v in stored}
        resolved = []
        for name, value in self.request_headers:
            if value == REDACTED:
                if name.lower() not in kept:
                    raise InputError(
                        f"request header {name}: {REDACTED} keeps a stored value, and there is "
                        "none: give the real value"
                    )
                value = kept[name.lower()]
            resolved.append((name, value))
        return replace(self, request_headers=tuple(resolved))

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
            "request_headers": canonical_request_headers,
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
        """The fields as a JSON-ready mapping (tags as a list), request headers with their
        real values: input for validation, never an output (``public_request_headers``)."""
        return {
            "method": self.method,
            "url": self.url,
            "name": self.name,
            "owner": self.owner,
            "tags": list(self.tags),
            "enabled": self.enabled,
            "notes": self.notes,
            "request_headers": dict(self.request_headers),
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
    "MAX_REQUEST_HEADERS",
    "MAX_REQUEST_HEADER_VALUE",
    "MAX_TAGS",
    "MAX_URL_LENGTH",
    "METHOD_LENGTH",
    "NAME_LENGTH",
    "OWNER_LENGTH",
    "RESERVED_REQUEST_HEADERS",
    "TAG_LENGTH",
    "EndpointInput",
    "canonical_request_headers",
    "canonical_tag",
    "canonical_tags",
    "canonical_url",
    "endpoint_method",
    "one_line",
    "optional_text",
    "parse_header_line",
    "request_header",
]
