"""The Origin values to probe an endpoint with, each labelled with what it would prove.

Attacker variants are derived from the endpoint's own host and from the
policy's allowed origins; legitimate ones are the allowed origins themselves.
Randomness (the attacker token) is a parameter, registrable domains come from an
injected public-suffix lookup: the module stays pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from scanner.core.origin import (
    DEFAULT_PORTS,
    HostEncoder,
    Origin,
    ascii_host_encoder,
    canonical_host,
    is_ip_host,
)
from scanner.core.policy import Policy
from scanner.errors import ConfigError, InputError, InvalidOrigin, InvalidURL


class VariantKind(StrEnum):
    """The class of an Origin value. Stable: finding fingerprints use it."""

    ARBITRARY = "arbitrary_origin"  # an unrelated foreign origin
    NULL = "null"  # the opaque origin
    SELF = "self"  # the endpoint's own origin (same-origin, as a control)
    PREFIX = "prefix_match"  # https://app.acme.com.attacker.example
    SUFFIX = "suffix_match"  # https://attackeracme.com
    UNESCAPED_DOT = "unescaped_dot"  # https://appxacme.com
    SUBDOMAIN = "any_subdomain"  # https://x.acme.com
    HTTP_DOWNGRADE = "http_downgrade"  # http://app.acme.com for an https origin
    SPECIAL_CHARS = "special_chars"  # https://app.acme.com_.attacker.example
    THIRD_PARTY = "third_party"  # https://x.github.io, https://codepen.io
    LOCALHOST = "localhost"  # http://localhost:3000, http://127.0.0.1:8080
    ALLOWED = "allowed"  # an origin the policy allows, exactly
    ALLOWED_TRAILING_SLASH = "allowed_trailing_slash"  # https://app.acme.com/
    ALLOWED_CASE = "allowed_case"  # https://APP.acme.com
    ALLOWED_PORT = "allowed_explicit_port"  # https://app.acme.com:443
    CUSTOM = "custom"  # an origin the user asked to probe (scan --origin)


@dataclass(frozen=True, slots=True)
class ProbeOrigin:
    """One Origin header value to send.

    ``trusted``: the policy allows this origin (a legitimate reader).
    ``browser_sendable``: a real browser could send this exact value; variants
    that are not (upper case, default port, trailing slash) only show how the
    server matches origins and are never a finding by themselves.
    ``base``: the trusted origin or host it was derived from, if any.
    """

    value: str
    kind: VariantKind
    trusted: bool = False
    browser_sendable: bool = True
    base: str | None = None
    note: str = ""


class PublicSuffixes(Protocol):
    """Registrable-domain lookup (the Public Suffix List), supplied by an adapter."""

    def registrable_domain(self, host: str) -> str | None:
        """``app.acme.co.uk`` -> ``acme.co.uk``; None for a public suffix or an IP."""
        ...


DEFAULT_THIRD_PARTY_HOSTS: tuple[str, ...] = (
    "*.github.io",
    "*.herokuapp.com",
    "*.vercel.app",
    "*.netlify.app",
    "*.pages.dev",
    "*.web.app",
    "*.firebaseapp.com",
    "*.appspot.com",
    "*.azurewebsites.net",
    "*.cloudfront.net",
    "*.s3.amazonaws.com",
    "*.glitch.me",
    "*.ngrok.io",
    "*.ngrok-free.app",
    "codepen.io",
    "cdpn.io",
    "jsfiddle.net",
    "fiddle.jshell.net",
    "stackblitz.com",
    "codesandbox.io",
)

DEFAULT_SPECIAL_CHARS: tuple[str, ...] = (
    "_", "-", "`", "!", "~", "$", "&", "'", "(", ")", "*", "+", ",", ";", "=", "{", "}", "|", "^",
)  # fmt: skip

DEFAULT_LOCALHOST_ORIGINS: tuple[str, ...] = (
    "http://localhost",
    "http://localhost:3000",
    "http://localhost:8080",
    "http://127.0.0.1",
    "http://127.0.0.1:8080",
    "https://localhost",
)


@dataclass(frozen=True, slots=True)
class VariantSettings:
    """Tunables of origin generation, built once from settings."""

    attacker_domain: str = "attacker.example"
    third_party_hosts: tuple[str, ...] = DEFAULT_THIRD_PARTY_HOSTS
    special_chars: tuple[str, ...] = DEFAULT_SPECIAL_CHARS
    localhost_origins: tuple[str, ...] = DEFAULT_LOCALHOST_ORIGINS
    max_trusted_bases: int = 8  # allowed origins each expanded into attacker variants

    def __post_init__(self) -> None:
        # Every value ends up in an Origin header: reject what could not, once,
        # here, rather than emitting a broken probe for every endpoint.
        if not _is_plain_domain(self.attacker_domain):
            raise ConfigError(
                f"attacker_domain {self.attacker_domain!r} is not a lowercase ASCII domain name"
            )
        for host in self.third_party_hosts:
            if not _is_plain_domain(host.removeprefix("*.")):
                raise ConfigError(
                    f"third-party host {host!r} is not a domain name or '*.' and a domain name"
                )
        for char in self.special_chars:
            if len(char) != 1 or not "!" <= char <= "~":
                raise ConfigError(
                    f"special character {char!r} is not one printable ASCII character "
                    "(no space, no control character)"
                )
        for value in self.localhost_origins:
            try:
                ok = Origin.parse(value).serialize() == value
            except InvalidOrigin:
                ok = False
            if not ok or value == "null":
                raise ConfigError(
                    f"localhost origin {value!r} is not a serialised origin such as "
                    "http://localhost:3000"
                )
        if self.max_trusted_bases < 0:
            raise ConfigError(f"max_trusted_bases must be >= 0, not {self.max_trusted_bases}")


def _is_plain_domain(host: str) -> bool:
    try:
        canonical = canonical_host(host)
    except InvalidOrigin:
        return False
    return canonical == host and not is_ip_host(host) and not host.endswith(".")


# -- generation -----------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]{1,32}\Z")
# The letter that stands in for an unescaped regex dot: any character matches it.
_DOT_STAND_IN = "x"
# A regex's unescaped dots sit in the trusted host; a host has few, but bound it.
_MAX_DOTS_PER_BASE = 6
# Kinds that win a duplicate value: the allowlist's own origins must be probed as
# legitimate, the endpoint's origin as the control; everything else ranks after.
_PRIORITY: dict[VariantKind, int] = {VariantKind.ALLOWED: 0, VariantKind.SELF: 1}
_HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class _Base:
    """A trusted host attacker variants are derived from."""

    scheme: str
    host: str  # lowercase, no trailing dot
    port: int | None
    label: str  # what ProbeOrigin.base says: the pattern or the domain
    full_host: bool  # an exact allowed origin's host
    wildcard: bool  # the domain of a ``*.domain`` pattern
    member: bool = False  # a concrete host a ``*.domain`` pattern allows ({token}.domain)

    @property
    def port_text(self) -> str:
        return f":{self.port}" if self.port is not None else ""


def probe_origins(
    endpoint_url: str,
    policy: Policy,
    *,
    suffixes: PublicSuffixes,
    token: str,
    settings: VariantSettings = VariantSettings(),
    encode_host: HostEncoder = ascii_host_encoder,
) -> tuple[ProbeOrigin, ...]:
    """Every Origin value to probe ``endpoint_url`` with, legitimate ones first.

    Deterministic: the same inputs give the same tuple in the same order.
    ``token`` is the caller's short random ``[a-z0-9]`` string (1-32
    characters) that makes attacker hosts unguessable; it is never generated
    here. Values are unique (the allowlist's own kind wins a duplicate, then the
    endpoint's own origin, then the first generated), each is a valid header
    value (printable ASCII, no space; a comma only in the ``,`` special-character
    host), and every browser-sendable one except ``null`` is a serialised
    origin that round-trips through ``Origin.parse``. A variant the policy
    allows is marked ``trusted``. Not browser-sendable, never trusted, evidence
    only: the case/slash/port variants of allowed origins, and special-character
    hosts the URL standard forbids (``|``, ``^``).

    Host-derived variants (prefix, suffix, unescaped dot, subdomain) attack the
    policy's first ``settings.max_trusted_bases`` http(s) hosts (a wildcard
    stands for its domain) plus, always, the endpoint's registrable domain;
    they keep the trusted origin's scheme and port, except prefix variants,
    whose host belongs to the attacker's domain. Values that would not be an
    origin (derived from an IP address, longer than DNS allows) are left out.

    The count is bounded: about 70 values for a policy naming one origin and
    one wildcard, under 90 for three origins, with the default settings.
    Raises ``InputError`` for a bad token and ``InvalidURL`` for an endpoint
    that is not an absolute http(s) URL.
    """
    if not _TOKEN.match(token):
        raise InputError(f"attacker token {token!r} must be 1-32 characters of a-z and 0-9")
    endpoint = Origin.from_url(endpoint_url, encode_host=encode_host)
    if endpoint.scheme not in _HTTP_SCHEMES:
        raise InvalidURL(f"{endpoint_url!r}: only http and https endpoints can be probed")
    out = _Collector(policy)
    attacker = settings.attacker_domain
    exact = [o for o in policy.exact_origins if not o.opaque]
    expanded = exact[: settings.max_trusted_bases]
    members = [
        (p, f"{p.scheme}://{token}.{p.host}{_port(p.port)}")
        for p in policy.allowed_origins
        if p.any_subdomain
    ]

    # The allowlist itself: each must work, so each is probed as its legitimate page would.
    for pattern in policy.allowed_origins:
        if pattern.opaque:
            out.add("null", VariantKind.ALLOWED, "legitimate: the policy allows null")
        elif not pattern.any_subdomain:
            value = f"{pattern.scheme}://{pattern.host}{_port(pattern.port)}"
            out.add(value, VariantKind.ALLOWED, "legitimate: the policy allows this origin")
    for pattern, value in members:
        out.add(
            value,
            VariantKind.ALLOWED,
            f"legitimate: one member of {pattern}",
            base=str(pattern),
        )
    out.add(
        endpoint.serialize(),
        VariantKind.SELF,
        "control: the endpoint's own origin; a same-origin page needs no CORS",
    )
    for origin in expanded:
        _evidence(out, origin)

    out.add(
        f"https://{token}.{attacker}",
        VariantKind.ARBITRARY,
        "reflected, any website can read the endpoint",
    )
    out.add(
        "null",
        VariantKind.NULL,
        "reflected, any sandboxed iframe or data: page can read the endpoint as null",
    )

    bases = _bases(policy, endpoint, suffixes, settings.max_trusted_bases, token)
    for base in bases:
        out.add(
            f"{base.scheme}://{base.host}.{attacker}",
            VariantKind.PREFIX,
            f"reflected, the server matches {base.label} as a prefix: {attacker} owns this host",
            base=base.label,
        )
    for base in bases:
        for value, domain in _suffix_hosts(base, suffixes, token):
            out.add(
                value,
                VariantKind.SUFFIX,
                f"reflected, the server matches {domain} as a suffix without a dot before it",
                base=base.label,
            )
    for base in bases:
        for host in _undotted(base.host):
            out.add(
                f"{base.scheme}://{host}{base.port_text}",
                VariantKind.UNESCAPED_DOT,
                f"reflected, a pattern for {base.label} has an unescaped '.' (any character)",
                base=base.label,
                skip_if_allowed=True,
            )
    for base in bases:
        # One label under the trusted host, and under its registrable domain in
        # both the trusted origin's scheme and the API's own: a matcher for
        # "[a-z]+\\.acme\\.com" takes x.acme.com, not x.app.acme.com.
        domain = _registrable(suffixes, base.host) or base.host
        candidates = [] if base.member else [(base.scheme, base.host, base.port_text)]
        candidates.append((base.scheme, domain, base.port_text))
        candidates.append((endpoint.scheme, domain, _port(endpoint.port)))
        for scheme, host, port in candidates:
            out.add(
                f"{scheme}://{token}.{host}{port}",
                VariantKind.SUBDOMAIN,
                f"reflected, every subdomain of {host} is trusted: "
                "one taken-over or XSS-able subdomain reads the endpoint",
                base=base.label,
            )

    downgrades = [(str(o), o) for o in expanded]
    downgrades += [
        (str(p), Origin.parse(v)) for p, v in members[: settings.max_trusted_bases] if _parses(v)
    ]
    downgrades.append((endpoint.serialize(), endpoint))
    for label, origin in downgrades:
        if origin.scheme == "https":
            out.add(
                origin.with_scheme("http").serialize(),
                VariantKind.HTTP_DOWNGRADE,
                f"reflected, the http origin of {label} is trusted: "
                "a network attacker injecting script over http reads the endpoint",
                base=label,
            )

    special = next((b for b in bases if b.full_host), None)
    special = special or next((b for b in bases if b.member), bases[-1])
    # For a wildcard the trusted hosts are its members, not the domain itself.
    special_host = special.host
    for char in settings.special_chars:
        out.add(
            f"{special.scheme}://{special_host}{char}.{attacker}",
            VariantKind.SPECIAL_CHARS,
            f"reflected, the matcher stops at {char!r} after {special_host}; "
            f"browsers that accept {char!r} in a host send this from {attacker}",
            base=special.label,
            # The URL standard forbids some of these in a host (| ^): browsers
            # never send those, so they are evidence only.
            sendable=None,
        )

    for entry in settings.third_party_hosts:
        host = f"{token}.{entry[2:]}" if entry.startswith("*.") else entry
        out.add(
            f"https://{host}",
            VariantKind.THIRD_PARTY,
            f"reflected, {entry} serves anyone's pages: trusting it trusts all its users",
        )
    for value in settings.localhost_origins:
        out.add(
            value,
            VariantKind.LOCALHOST,
            "reflected, any page or process on the user's machine can read the endpoint",
        )
    return out.result()


def _port(port: int | None) -> str:
    return f":{port}" if port is not None else ""


def _parses(value: str) -> bool:
    try:
        Origin.parse(value)
    except InvalidOrigin:
        return False
    return True


def _evidence(out: _Collector, origin: Origin) -> None:
    """How the server matches an allowed origin: values no browser sends."""
    value = origin.serialize()
    label = value
    out.add(
        value + "/",
        VariantKind.ALLOWED_TRAILING_SLASH,
        "evidence only (no browser sends it): echoed, the server accepts a trailing slash",
        base=label,
        sendable=False,
    )
    upper = origin.host.upper()
    if upper != origin.host:
        out.add(
            f"{origin.scheme}://{upper}{_port(origin.port)}",
            VariantKind.ALLOWED_CASE,
            "evidence only (no browser sends it): echoed, the server matches case-insensitively",
            base=label,
            sendable=False,
        )
    default = DEFAULT_PORTS.get(origin.scheme)
    if origin.port is None and default is not None:
        out.add(
            f"{value}:{default}",
            VariantKind.ALLOWED_PORT,
            "evidence only (no browser sends it): echoed, the server ignores the default port",
            base=label,
            sendable=False,
        )


def _bases(
    policy: Policy, endpoint: Origin, suffixes: PublicSuffixes, limit: int, token: str
) -> list[_Base]:
    """The trusted hosts to attack: the policy's (up to ``limit`` patterns), then the endpoint's domain.

    An exact origin is one base; a ``*.domain`` pattern is two: a concrete
    member (``{token}.domain``), so every attack family is built from a host
    the pattern really allows (``{token}.acme.com.attacker.example`` catches a
    regex with no end anchor that ``acme.com.attacker.example`` does not), and
    the domain itself. Bases are keyed by scheme, host and port: an ``http``
    pattern for a host never hides the endpoint's ``https`` one.
    """
    bases: dict[tuple[str, str, int | None], _Base] = {}
    patterns = 0
    for pattern in policy.allowed_origins:
        if patterns >= limit:
            break
        if pattern.opaque or pattern.scheme not in _HTTP_SCHEMES:
            # An attacker cannot serve a page under another scheme's host.
            continue
        patterns += 1
        host = pattern.host.rstrip(".")
        label = str(pattern)
        if pattern.any_subdomain:
            member = f"{token}.{host}"
            bases.setdefault(
                (pattern.scheme, member, pattern.port),
                _Base(pattern.scheme, member, pattern.port, label, False, False, member=True),
            )
            bases.setdefault(
                (pattern.scheme, host, pattern.port),
                _Base(pattern.scheme, host, pattern.port, label, False, wildcard=True),
            )
        else:
            bases.setdefault(
                (pattern.scheme, host, pattern.port),
                _Base(pattern.scheme, host, pattern.port, label, full_host=True, wildcard=False),
            )
    # Always attack the endpoint's own domain too: it is what an allowlist
    # written as a regex or a suffix check most often names.
    domain = _registrable(suffixes, endpoint.host) or endpoint.host.rstrip(".")
    bases.setdefault(
        (endpoint.scheme, domain, None),
        _Base(endpoint.scheme, domain, None, domain, full_host=False, wildcard=False),
    )
    return list(bases.values())


def _registrable(suffixes: PublicSuffixes, host: str) -> str | None:
    """The adapter's answer, trusted only when it is a canonical domain of ``host``."""
    if is_ip_host(host):
        return None
    found = suffixes.registrable_domain(host)
    if found is None:
        return None
    domain = found.lower().rstrip(".")
    bare = host.rstrip(".")
    if not domain or not (bare == domain or bare.endswith("." + domain)):
        return None
    return domain


def _suffix_hosts(base: _Base, suffixes: PublicSuffixes, token: str) -> Iterator[tuple[str, str]]:
    """(origin, trusted string it ends with) for a suffix match without a dot boundary."""
    scheme, port = base.scheme, base.port_text
    domain = _registrable(suffixes, base.host)
    if domain is not None:
        yield f"{scheme}://{token}{domain}{port}", domain
        yield f"{scheme}://{token}-{domain}{port}", domain
    # '{token}app.acme.com' would be a subdomain of acme.com: proof of trusting
    # subdomains, not of a suffix test. Only outside the registrable domain does
    # a suffix match hand the attacker a domain they can register.
    if domain is None:
        yield f"{scheme}://{token}{base.host}{port}", base.host


def _undotted(host: str) -> Iterator[str]:
    """``app.acme.com`` -> ``appxacme.com``, ``app.acmexcom``: each dot in turn."""
    dots = [i for i, c in enumerate(host) if c == "."]
    for i in dots[:_MAX_DOTS_PER_BASE]:
        yield host[:i] + _DOT_STAND_IN + host[i + 1 :]


class _Collector:
    """Accumulates variants: validates each value, computes ``trusted``, dedupes by priority."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._found: dict[str, tuple[int, int, ProbeOrigin]] = {}

    def add(
        self,
        value: str,
        kind: VariantKind,
        note: str,
        *,
        base: str | None = None,
        sendable: bool | None = True,
        skip_if_allowed: bool = False,
    ) -> None:
        """Add one value. ``sendable``: True, must be an origin (else dropped);
        False, evidence only; None, sendable exactly when it is an origin."""
        # Header-safe: printable ASCII without space, so no CR/LF/NUL can ever reach the wire.
        if not value or not all("!" <= c <= "~" for c in value):
            return
        trusted = False
        if sendable is not False:
            origin = _origin_of(value)
            if origin is None and sendable:
                return  # derived from an IP, or too long for DNS: not an origin at all
            sendable = origin is not None
            trusted = origin is not None and self._policy.allows(origin)
        if trusted and skip_if_allowed:
            return
        if trusted and kind not in _PRIORITY:
            note = "allowed by the policy: a reflection here is legitimate"
        rank = _PRIORITY.get(kind, len(_PRIORITY))
        previous = self._found.get(value)
        if previous is not None and previous[0] <= rank:
            return
        order = previous[1] if previous is not None else len(self._found)
        self._found[value] = (
            rank,
            order,
            ProbeOrigin(
                value, kind, trusted=trusted, browser_sendable=sendable, base=base, note=note
            ),
        )

    def result(self) -> tuple[ProbeOrigin, ...]:
        return tuple(item[2] for item in sorted(self._found.values(), key=lambda t: t[1]))


def _origin_of(value: str) -> Origin | None:
    """The origin ``value`` serialises exactly, or None."""
    try:
        origin = Origin.parse(value)
    except InvalidOrigin:
        return None
    return origin if origin.serialize() == value else None
