"""The Origin values to probe an endpoint with, each labelled with what it would prove.

Attacker variants are derived from the endpoint's own host and from the
policy's allowed origins; legitimate ones are the allowed origins themselves.
Randomness (the attacker token) is a parameter, registrable domains come from an
injected public-suffix lookup: the module stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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
