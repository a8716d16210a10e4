"""What an endpoint *should* allow: the CORS policy its legitimate front ends need."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from scanner.core.browser import normalize_method
from scanner.core.origin import HostEncoder, Origin, ascii_host_encoder
from scanner.errors import InputError, InvalidOrigin, InvalidPolicy

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """An allowed origin: exact, or ``scheme://*.domain[:port]`` for every subdomain.

    Patterns are a safe syntax, never regexes: ``*`` stands for one or more
    whole labels in front of the domain, and matches nothing else.
    """

    scheme: str
    host: str
    port: int | None = None
    any_subdomain: bool = False
    opaque: bool = False

    @classmethod
    def parse(cls, text: str, *, encode_host: HostEncoder = ascii_host_encoder) -> OriginPattern:
        raw = text.strip()
        if raw == "*":
            raise InvalidPolicy(
                "'*' is not an origin: set public=true for an endpoint anyone may read"
            )
        if "*" in raw:
            scheme, sep, rest = raw.partition("://*.")
            if not sep or "*" in rest:
                raise InvalidPolicy(
                    f"{text!r}: a pattern is scheme://*.domain[:port]; '*' stands only for "
                    "leading labels"
                )
            try:
                base = Origin.parse(f"{scheme}://{rest}", lenient=True, encode_host=encode_host)
            except InvalidOrigin as exc:
                raise InvalidPolicy(f"{text!r}: {exc.message}") from exc
            if base.is_ip:
                raise InvalidPolicy(f"{text!r}: an IP address has no subdomains")
            return cls(base.scheme, base.host, base.port, any_subdomain=True)
        try:
            origin = Origin.parse(raw, lenient=True, encode_host=encode_host)
        except InvalidOrigin as exc:
            raise InvalidPolicy(exc.message) from exc
        return cls.exact(origin)

    @classmethod
    def exact(cls, origin: Origin) -> OriginPattern:
        return cls(origin.scheme, origin.host, origin.port, opaque=origin.opaque)

    def matches(self, origin: Origin) -> bool:
        if self.opaque or origin.opaque:
            return self.opaque and origin.opaque
        if (origin.scheme, origin.port) != (self.scheme, self.port):
            return False
        if self.any_subdomain:
            return origin.host.endswith("." + self.host)
        return origin.host == self.host

    @property
    def origin(self) -> Origin | None:
        """The one origin an exact pattern names; None for wildcard patterns."""
        if self.any_subdomain:
            return None
        if self.opaque:
            return Origin.null()
        return Origin(self.scheme, self.host, self.port)

    def __str__(self) -> str:
        if self.opaque:
            return "null"
        port = f":{self.port}" if self.port is not None else ""
        star = "*." if self.any_subdomain else ""
        return f"{self.scheme}://{star}{self.host}{port}"


@dataclass(frozen=True, slots=True)
class Policy:
    """The CORS behaviour an endpoint should have.

    An empty ``allowed_origins`` with ``public`` false means "no cross-origin
    reader at all": the scanner then judges by attacker origins alone.
    """

    allowed_origins: tuple[OriginPattern, ...] = ()
    allow_credentials: bool = False
    allowed_methods: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    max_age: int | None = None
    public: bool = False

    @classmethod
    def build(
        cls,
        *,
        allowed_origins: Iterable[str] = (),
        allow_credentials: bool = False,
        allowed_methods: Iterable[str] = (),
        allowed_headers: Iterable[str] = (),
        exposed_headers: Iterable[str] = (),
        max_age: int | None = None,
        public: bool = False,
        encode_host: HostEncoder = ascii_host_encoder,
    ) -> Policy:
        """Validate user-written values into a Policy; errors name the bad value."""
        patterns = tuple(OriginPattern.parse(o, encode_host=encode_host) for o in allowed_origins)
        methods = tuple(_method(m) for m in allowed_methods)
        headers = tuple(_token(h, "header name").lower() for h in allowed_headers)
        exposed = tuple(_token(h, "header name").lower() for h in exposed_headers)
        if max_age is not None and (not isinstance(max_age, int) or max_age < 0):
            raise InvalidPolicy(f"max_age must be a whole number of seconds >= 0, not {max_age!r}")
        if public and allow_credentials:
            raise InvalidPolicy(
                "a public endpoint ('*') cannot also allow credentials: browsers refuse "
                "'Access-Control-Allow-Origin: *' with credentials"
            )
        return cls(
            allowed_origins=_dedupe(patterns),
            allow_credentials=allow_credentials,
            allowed_methods=_dedupe(methods),
            allowed_headers=_dedupe(headers),
            exposed_headers=_dedupe(exposed),
            max_age=max_age,
            public=public,
        )

    def allows(self, origin: Origin) -> bool:
        """Whether the policy names this origin as a legitimate reader."""
        return any(p.matches(origin) for p in self.allowed_origins)

    @property
    def exact_origins(self) -> tuple[Origin, ...]:
        return tuple(o for p in self.allowed_origins if (o := p.origin) is not None)

    @property
    def declared(self) -> bool:
        """True when the policy says anything about who may read."""
        return bool(self.allowed_origins) or self.public


def _method(value: str) -> str:
    # The method as a front end's fetch() sends it: the one method rule (core.browser).
    text = value.strip() if isinstance(value, str) else value
    try:
        return normalize_method(text)
    except InputError:
        raise InvalidPolicy(f"{value!r} is not a valid method") from None


def _token(value: str, what: str) -> str:
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not _TOKEN.match(text):
        raise InvalidPolicy(f"{value!r} is not a valid {what}")
    return text


_T = TypeVar("_T")


def _dedupe(items: tuple[_T, ...]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))
