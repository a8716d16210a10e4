"""Host knowledge the pure core cannot compute itself: the Public Suffix List and UTS #46.

Both come from packages with bundled data (``publicsuffixlist`` ships the list,
``idna`` the Unicode tables), so nothing is downloaded at run time. The core
receives them as values: a :class:`PublicSuffixList` where it asks for a
``scanner.core.variants.PublicSuffixes``, and :func:`uts46_host_encoder` where
it asks for a ``scanner.core.origin.HostEncoder``.
"""

from __future__ import annotations

import functools
import ipaddress

import idna
import publicsuffixlist

from scanner.core.origin import is_ip_host
from scanner.errors import InvalidOrigin

__all__ = ["PublicSuffixList", "default_public_suffixes", "uts46_host_encoder"]


class PublicSuffixList:
    """Registrable domains from the Public Suffix List bundled with ``publicsuffixlist``.

    Implements ``scanner.core.variants.PublicSuffixes``. Private (non-ICANN)
    rules count, as they do for Chromium's "site": ``x.github.io`` is its own
    registrable domain. Unknown top-level domains follow the list's implicit
    ``*`` rule. Parsing the list takes tens of milliseconds and a few MB, so
    build one (see :func:`default_public_suffixes`) and keep it.
    """

    __slots__ = ("_psl",)

    def __init__(self, source: str | None = None) -> None:
        """Load the bundled list, or ``source`` (the list's text) when given (for tests)."""
        self._psl = publicsuffixlist.PublicSuffixList(source)

    def registrable_domain(self, host: str) -> str | None:
        """``app.acme.co.uk`` -> ``acme.co.uk``; None for a public suffix, an IP or no host.

        ``host`` is an ASCII (punycode) or Unicode host name, any case; the
        result is lowercase and keeps a trailing dot when the host has one
        (``acme.com.`` is a different origin host from ``acme.com``).
        """
        name = _domain_or_none(host)
        if name is None:
            return None
        found = self._psl.privatesuffix(name.rstrip("."))
        if found is None:
            return None
        return found + "." if name.endswith(".") else found

    def public_suffix(self, host: str) -> str | None:
        """The public suffix ``host`` ends with (``co.uk`` for ``acme.co.uk``); None for an IP."""
        name = _domain_or_none(host)
        if name is None:
            return None
        found = self._psl.publicsuffix(name.rstrip("."))
        return None if found is None else str(found)

    def is_public_suffix(self, host: str) -> bool:
        """True when ``host`` is itself a public suffix (``co.uk``, ``github.io``)."""
        name = _domain_or_none(host)
        return name is not None and bool(self._psl.is_public(name.rstrip(".")))


@functools.cache
def default_public_suffixes() -> PublicSuffixList:
    """The process-wide list, built on first use (the parse is the expensive part)."""
    return PublicSuffixList()


def _domain_or_none(host: str) -> str | None:
    name = host.strip().lower()
    if not name.rstrip(".") or name.startswith(".") or ".." in name:
        return None
    if is_ip_host(name) or _is_bare_ipv6(name):
        return None
    return name


def _is_bare_ipv6(name: str) -> bool:
    if ":" not in name:
        return False
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


def uts46_host_encoder(host: str) -> str:
    """The ASCII form of a host as Chromium computes it: UTS #46, non-transitional.

    ``faß.de`` -> ``xn--fa-hia.de`` (IDNA 2003, the standard library's codec,
    gives ``fass.de``). Labels are mapped (case folded, full-width forms and
    ideographic full stops normalised), then every non-ASCII label is checked
    against IDNA 2008 (code points, joiners, the Bidi rule) and punycoded.
    ASCII labels pass through: like Chromium (UseSTD3ASCIIRules=false) we do
    not reject ``_`` and friends there; the origin parser decides what a host
    may contain. Stricter than Chromium in one corner: a non-ASCII label may
    not begin or end with ``-``.

    Raises ``InvalidOrigin`` naming the host and the reason when it cannot be encoded.
    """
    try:
        # Non-transitional (ß, ς, ZWJ kept) is the only mode of current idna
        # releases and what Chromium uses; asking for it explicitly warns.
        mapped = idna.uts46_remap(host, std3_rules=False)
        labels = [
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        ]
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidOrigin(
            f"host {host!r} is not a valid internationalised domain name: {exc}"
        ) from exc
    return ".".join(labels)
