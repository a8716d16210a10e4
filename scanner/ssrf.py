"""SSRF guard: which addresses we may connect to, checked at configuration *and* at connect time.

Shared by the alert senders (hook URLs) and the prober (scan targets, with
its own rule: ``scanner.prober.guard``). A hook URL is chosen by a user; the
request is sent from inside the network that runs cors-scanner. Without a guard, ``http://169.254.169.254/...`` reads
cloud credentials and ``http://10.0.0.5:9200/`` pokes an internal database.

Two layers, one rule (:class:`AddressPolicy`):

1. :func:`check_url` / :func:`check_hook_url` when a hook is created or
   changed: http(s) only, no credentials in the URL, no cloud-metadata host
   name, and *every* address the host resolves to must be permitted. A clear
   :class:`scanner.errors.UnsafeURL` tells the user why.
2. :func:`guarded_connector` on every connection: an aiohttp ``TCPConnector``
   whose resolver (:class:`GuardedResolver`) drops refused addresses from
   every lookup, and whose socket factory refuses to open a socket to a
   refused address. aiohttp hands IP-literal URLs straight to the socket
   factory without asking the resolver, so together they see every address
   actually connected to. Because the check happens *after* resolution, on
   the address used, a DNS answer that changes between validation and
   delivery (DNS rebinding) cannot slip through. A refused connection fails
   with :class:`BlockedAddress` (an OSError, which aiohttp wraps in
   ``ClientConnectorError``; ``scanner.alerts.sender`` reports it as
   ``DeliveryError.BLOCKED``).

Redirects are never followed by the senders (a 3xx is a failure), and the
sessions ignore proxy variables: a proxy would make the guard check the
proxy's address instead of the target's.

Address classes (:func:`classify_address`): loopback (127/8, ::1),
private (RFC 1918, ULA fc00::/7, site-local fec0::/10), shared (CGNAT
100.64/10), link-local (169.254/16, fe80::/10), cloud metadata
(169.254.169.254, fd00:ec2::254, 100.100.100.200), unspecified (0/8, ::),
multicast, reserved (240/4, broadcast, documentation, benchmarking and other
special-purpose ranges Python does not call global). IPv4-mapped
(``::ffff:127.0.0.1``), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses
are judged by the IPv4 address they carry.

Reuse for scan targets (issue 6): the same connector with
``AddressPolicy(allow_private=True, allow_loopback=True)`` permits internal
targets but still refuses link-local and metadata addresses.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from scanner.errors import InvalidURL, UnsafeURL

__all__ = [
    "BLOCKED_MARKER",
    "HOOK_SETTINGS",
    "METADATA_ADDRESSES",
    "METADATA_HOSTNAMES",
    "AddressClass",
    "AddressPolicy",
    "BlockedAddress",
    "GuardedResolver",
    "check_hook_url",
    "check_url",
    "classify_address",
    "guard_socket_factory",
    "guarded_connector",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, Oracle, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
# Names that reach a metadata service inside a cloud even when our own
# resolver (outside that cloud) says something else.
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_V4_UNSPECIFIED = _V4("0.0.0.0/8")
_V4_LOOPBACK = _V4("127.0.0.0/8")
_V4_LINK_LOCAL = _V4("169.254.0.0/16")
_V4_PRIVATE = (_V4("10.0.0.0/8"), _V4("172.16.0.0/12"), _V4("192.168.0.0/16"))
_V4_SHARED = _V4("100.64.0.0/10")
_V4_MULTICAST = _V4("224.0.0.0/4")
_V4_RESERVED = _V4("240.0.0.0/4")  # includes 255.255.255.255
_V6_LINK_LOCAL = _V6("fe80::/10")
_V6_PRIVATE = (_V6("fc00::/7"), _V6("fec0::/10"))
_V6_MULTICAST = _V6("ff00::/8")
_V6_NAT64 = _V6("64:ff9b::/96")
_V6_NAT64_LOCAL = _V6("64:ff9b:1::/48")


class AddressClass(StrEnum):
    """What kind of address a connection would go to."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    SHARED = "shared"  # carrier-grade NAT, 100.64.0.0/10
    LINK_LOCAL = "link-local"
    METADATA = "metadata"  # a cloud instance-metadata service
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


def classify_address(address: IPAddress) -> AddressClass:
    """The class of ``address`` (IPv6 forms that embed IPv4 are judged by the IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        return _classify_v6(address)
    return _classify_v4(address)


def _classify_v4(address: ipaddress.IPv4Address) -> AddressClass:
    if address in _V4_UNSPECIFIED:
        return AddressClass.UNSPECIFIED  # 0.0.0.0 reaches this host on Linux
    if address in _V4_LOOPBACK:
        return AddressClass.LOOPBACK
    if address in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if address in _V4_LINK_LOCAL:
        return AddressClass.LINK_LOCAL
    if any(address in network for network in _V4_PRIVATE):
        return AddressClass.PRIVATE
    if address in _V4_SHARED:
        return AddressClass.SHARED
    if address in _V4_MULTICAST:
        return AddressClass.MULTICAST
    if address in _V4_RESERVED or address.is_reserved or not address.is_global:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


def _classify_v6(address: ipaddress.IPv6Address) -> AddressClass:
    address = ipaddress.IPv6Address(int(address))  # drop a %scope: it changes nothing here
    mapped = address.ipv4_mapped
    if mapped is not None:
        return _classify_v4(mapped)
    if address.is_unspecified:
        return AddressClass.UNSPECIFIED
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if address in _V6_LINK_LOCAL:
        return AddressClass.LINK_LOCAL
    if any(address in network for network in _V6_PRIVATE):
        return AddressClass.PRIVATE
    if address in _V6_MULTICAST:
        return AddressClass.MULTICAST
    if address in _V6_NAT64:
        return _classify_v4(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _V6_NAT64_LOCAL:
        return AddressClass.PRIVATE
    if address.sixtofour is not None:
        return _classify_v4(address.sixtofour)
    # ::/8 (IPv4-compatible ::a.b.c.d among it), Teredo, documentation, ...
    if address.teredo is not None or address.is_reserved or not address.is_global:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which address classes may be connected to. Public addresses always may.

    ``allow_private`` covers private and shared (CGNAT) ranges. Unspecified,
    multicast and reserved addresses are never permitted. Hooks default to
    public only; tests turn on ``allow_loopback`` for their 127.0.0.1
    receivers.
    """

    allow_loopback: bool = False
    allow_private: bool = False
    allow_link_local: bool = False
    allow_metadata: bool = False
    # flag -> the setting (environment variable) an operator turns on to allow
    # it; flags absent here cannot be allowed by configuration at all.
    setting_names: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_hooks(cls, *, allow_loopback: bool, allow_private: bool) -> AddressPolicy:
        """The hook policy: public only, plus loopback/private when the operator allows
        them (``CORS_SCANNER_HOOK_ALLOW_*``, named in every refusal)."""
        return cls(
            allow_loopback=allow_loopback,
            allow_private=allow_private,
            setting_names=HOOK_SETTINGS,
        )

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused, e.g. ``"a loopback address (allow_loopback is off)"``.

        With ``setting_names`` the reason names what allows it
        (``"set CORS_SCANNER_HOOK_ALLOW_LOOPBACK=true to allow it"``) or says
        nothing can. None when it is permitted.
        """
        kind = classify_address(address)
        setting = _SETTINGS.get(kind)
        if kind is AddressClass.PUBLIC or (setting is not None and getattr(self, setting)):
            return None
        article = "an" if kind.value[0] in "aeiou" else "a"
        return f"{article} {kind.value} address ({self._rule(setting)})"

    def _rule(self, flag: str | None) -> str:
        if flag is None:
            return "never allowed"
        if not self.setting_names:
            return f"{flag} is off"
        named = dict(self.setting_names).get(flag)
        if named is None:
            return "never allowed here, whatever the settings"
        return f"set {named}=true to allow it"

    def permits(self, address: IPAddress) -> bool:
        """True when a connection to ``address`` is allowed."""
        return self.refusal(address) is None

    def hostname_refusal(self, host: str) -> str | None:
        """Why the *name* ``host`` is refused (cloud metadata names), or None."""
        if not self.allow_metadata and _normalized(host) in METADATA_HOSTNAMES:
            return f"{host} is a cloud metadata host name ({self._rule('allow_metadata')})"
        return None


# The AddressPolicy flag that permits each class; classes not listed never are.
_SETTINGS = {
    AddressClass.LOOPBACK: "allow_loopback",
    AddressClass.PRIVATE: "allow_private",
    AddressClass.SHARED: "allow_private",
    AddressClass.LINK_LOCAL: "allow_link_local",
    AddressClass.METADATA: "allow_metadata",
}


# The settings that open the hook policy: the same variables for the CLI and the
# service (both read them through scanner.settings.Settings.from_env).
HOOK_SETTINGS = (
    ("allow_loopback", "CORS_SCANNER_HOOK_ALLOW_LOOPBACK"),
    ("allow_private", "CORS_SCANNER_HOOK_ALLOW_PRIVATE"),
)

BLOCKED_MARKER = "blocked by SSRF guard"


class BlockedAddress(OSError):
    """A connection to a refused address was stopped by the guard (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, f"{BLOCKED_MARKER}: {reason}")
        self.reason = reason


def _normalized(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that keeps only the addresses ``policy`` permits.

    Wraps ``inner`` (aiohttp's ThreadedResolver, i.e. the system's
    getaddrinfo, by default; the caller closes an ``inner`` it passed).
    Raises :class:`BlockedAddress` when nothing permitted is left, or for a
    metadata host name. Create it inside a running event loop.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._owns_inner = inner is None
        self._inner: AbstractResolver = inner if inner is not None else aiohttp.ThreadedResolver()

    @property
    def policy(self) -> AddressPolicy:
        """The rule this resolver applies."""
        return self._policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve through ``inner`` and drop refused addresses (BlockedAddress if none is left)."""
        by_name = self._policy.hostname_refusal(host)
        if by_name is not None:
            raise BlockedAddress(by_name)
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusals: list[str] = []
        for result in results:
            address = _ip(result["host"])
            why = "not an IP address" if address is None else self._policy.refusal(address)
            if why is None:
                kept.append(result)
            else:
                refusals.append(f"{result['host']}, {why}")
        if not kept:
            raise BlockedAddress(
                f"{host} resolves only to refused addresses: {'; '.join(refusals)}"
            )
        return kept

    async def close(self) -> None:
        """Close ``inner`` if this resolver created it."""
        if self._owns_inner:
            await self._inner.close()


_VERDICTS_KEPT = 4096


def guard_socket_factory(policy: AddressPolicy) -> Callable[[AddrInfo], socket.socket]:
    """An aiohttp ``socket_factory`` that refuses to open sockets to refused addresses.

    The last line of defence: it sees the exact address about to be
    connected to, including IP literals the resolver never sees.
    """

    # The verdict per address, kept: a scan opens thousands of connections to a
    # few addresses, and parsing and classifying each costs more than the socket.
    verdicts: dict[str, str | None] = {}

    def factory(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        text = str(sockaddr[0])
        if text in verdicts:
            why = verdicts[text]
        else:
            address = _ip(text)
            why = "not an IP address" if address is None else policy.refusal(address)
            if len(verdicts) >= _VERDICTS_KEPT:
                verdicts.clear()
            verdicts[text] = why
        if why is not None:
            raise BlockedAddress(f"{sockaddr[0]} is {why}")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def guarded_connector(
    policy: AddressPolicy, *, resolver: AbstractResolver | None = None, **kwargs: Any
) -> aiohttp.TCPConnector:
    """A ``TCPConnector`` that only ever connects to addresses ``policy`` permits.

    ``resolver`` is the inner resolver (default: the system's); ``kwargs`` go
    to TCPConnector (``ssl``, ``limit``, ...). Call inside a running loop.
    """
    if "resolver" in kwargs or "socket_factory" in kwargs:  # pragma: no cover - misuse
        raise TypeError("guarded_connector owns the resolver and the socket factory")
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, resolver),
        socket_factory=guard_socket_factory(policy),
        **kwargs,
    )


async def check_url(
    url: str, policy: AddressPolicy, *, resolver: AbstractResolver | None = None
) -> None:
    """Refuse a URL we must not call: UnsafeURL (or InvalidURL) saying why; None when fine.

    Stricter than the connect-time guard: *every* resolved address must be
    permitted (a name that also resolves somewhere internal is refused, even
    if delivery would only ever use its public addresses). InvalidURL when the
    URL does not parse or its host does not resolve.
    """
    try:
        parsed = URL(url)
        host = parsed.raw_host
        port = parsed.port
    except (TypeError, ValueError) as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http and https URLs may be called, not {parsed.scheme or 'none'!r}")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise UnsafeURL("the URL must not contain credentials (user:password@)")
    if not host or port is None:
        raise InvalidURL("not an absolute http(s) URL with a host")
    by_name = policy.hostname_refusal(host)
    if by_name is not None:
        raise UnsafeURL(f"refused: {by_name}")
    literal = _ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await _resolve_all(host, port, resolver)
    for address in addresses:
        why = policy.refusal(address)
        if why is not None:
            if literal is not None:
                raise UnsafeURL(f"refused: {host} is {why}")
            raise UnsafeURL(f"refused: {host} resolves to {address}, {why}")


async def check_hook_url(
    url: str,
    *,
    allow_private: bool = False,
    allow_loopback: bool = False,
    resolver: AbstractResolver | None = None,
) -> None:
    """:func:`check_url` with the hook policy: public addresses, plus what is allowed here.

    Link-local and metadata addresses are always refused for hooks.
    """
    policy = AddressPolicy.for_hooks(allow_loopback=allow_loopback, allow_private=allow_private)
    await check_url(url, policy, resolver=resolver)


async def _resolve_all(host: str, port: int, resolver: AbstractResolver | None) -> list[IPAddress]:
    own = resolver is None
    active: AbstractResolver = resolver if resolver is not None else aiohttp.ThreadedResolver()
    try:
        results = await active.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InvalidURL(f"cannot resolve {host}: {reason}") from None
    finally:
        if own:
            await active.close()
    addresses = [a for a in (_ip(r["host"]) for r in results) if a is not None]
    if not addresses:
        raise InvalidURL(f"cannot resolve {host}: no addresses")
    return addresses
