"""Which addresses scan targets may be, checked on every connection the prober opens.

The rule is the hook URLs' SSRF guard (:mod:`scanner.ssrf`) with a
different default: an internal scanner must reach private and loopback
addresses, but a target URL pointing at a cloud metadata service
(169.254.169.254, fd00:ec2::254, 100.100.100.200, ``metadata.google.internal``)
or at a link-local address is refused unless explicitly allowed. Unspecified,
multicast and reserved addresses are never connected to.

The check runs *after* DNS resolution, on the address actually connected to
(:func:`scanner.ssrf.guarded_connector`), so a name that resolves to a
metadata address, or one that changes its answer between two probes (DNS
rebinding), is caught too. Redirects are never followed by the prober.

When a probe goes through an HTTP(S) proxy, the proxy resolves the target's
name: only IP literals and metadata host names can be judged here
(:func:`proxied_refusal`); enforce the same rules in the proxy.

A refused connection becomes an Observation with ``ProbeError.BLOCKED``
(:func:`blocked_detail` names the setting that would allow it), never an
exception.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from yarl import URL

from scanner.ssrf import BLOCKED_MARKER, AddressPolicy, BlockedAddress

if TYPE_CHECKING:
    from scanner.settings import Settings

__all__ = [
    "DEFAULT_TARGET_POLICY",
    "BlockedAddress",
    "blocked_detail",
    "proxied_refusal",
    "target_policy",
]

# Internal targets are the point of a self-hosted scanner; metadata and link-local are not.
DEFAULT_TARGET_POLICY = AddressPolicy(
    allow_loopback=True, allow_private=True, allow_link_local=False, allow_metadata=False
)

# AddressPolicy names its own flags ("allow_metadata is off"); operators set variables.
_FLAG = re.compile(r"\ballow_(loopback|private|link_local|metadata) is off\b")


def target_policy(settings: Settings) -> AddressPolicy:
    """The target rule from the ``target_allow_*`` settings."""
    return AddressPolicy(
        allow_loopback=settings.target_allow_loopback,
        allow_private=settings.target_allow_private,
        allow_link_local=settings.target_allow_link_local,
        allow_metadata=settings.target_allow_metadata,
    )


def proxied_refusal(url: URL, policy: AddressPolicy) -> str | None:
    """Why a request to ``url`` through a proxy is refused, or None.

    Only what can be known without resolving: an IP-literal host and the
    metadata host names. The proxy, not us, resolves other names.
    """
    host = url.raw_host
    if not host:
        return None
    by_name = policy.hostname_refusal(host)
    if by_name is not None:
        return by_name
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    why = policy.refusal(address)
    return None if why is None else f"{host} is {why}"


def blocked_detail(exc: BaseException) -> str | None:
    """The Observation detail when ``exc`` (or one of its causes) is a guard refusal, else None.

    aiohttp wraps the guard's :class:`BlockedAddress` as ``os_error`` of a
    connector error, and aiohappyeyeballs merges several addresses' errors
    into one plain OSError keeping only their messages: all three are found.
    """
    reason = _blocked_reason(exc)
    if reason is None:
        return None
    reason = _FLAG.sub(lambda m: f"CORS_SCANNER_TARGET_ALLOW_{m.group(1).upper()} is off", reason)
    return f"refused by the target address rules: {reason}"


def _blocked_reason(exc: BaseException) -> str | None:
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BlockedAddress):
            return current.reason
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BlockedAddress):
            return os_error.reason
        if isinstance(current, OSError) and BLOCKED_MARKER in str(current):
            return str(current).split(BLOCKED_MARKER, 1)[1].lstrip(": ")
        current = current.__cause__ or current.__context__
    return None
