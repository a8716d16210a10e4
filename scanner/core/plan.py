"""The requests to send to one endpoint: simple requests and preflights, per origin.

The plan is pure data; ``scanner.prober`` turns it into sockets. Every probe
says which browser request it stands for (``cors_request``), so the verdict
can be computed from the exchange alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from scanner.core.browser import CorsRequest, needs_preflight, preflight_request_headers
from scanner.core.headers import Headers
from scanner.core.policy import Policy
from scanner.core.variants import ProbeOrigin, VariantKind

SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Methods we send as the "actual" request without being told to: they must not
# change state on the target. Anything else is approximated with GET.
SAFE_ACTUAL_METHODS = frozenset({"GET", "HEAD"})
# A credentialed browser request carries cookies; some servers (and some
# middleware releases) reflect the Origin or add ACAC only when one is present.
PROBE_COOKIE = "cors_scanner_probe=1"
# A method no legitimate front end uses: echoed back, it shows ACAM reflection.
UNUSUAL_METHOD = "PROPFIND"


class ProbeKind(StrEnum):
    SIMPLE = "simple"  # the actual request: GET/HEAD with Origin and a cookie
    PREFLIGHT = "preflight"  # OPTIONS with Access-Control-Request-*
    ERROR_PATH = "error_path"  # an actual request to a path that should answer 4xx/5xx


class PreflightPurpose(StrEnum):
    LEGITIMATE = "legitimate"  # the preflight a legitimate front end sends for this endpoint
    ORIGIN = "origin"  # the preflight any other origin's page needs for this endpoint's method
    REFLECTION = "reflection"  # an unusual method and header: are they echoed?
    ATTACKER = "attacker"  # a foreign origin asking for the endpoint's method and private network


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint to probe: method and absolute URL."""

    url: str
    method: str = "GET"
    name: str | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.url}"


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One HTTP request to send, and the browser request it stands for.

    ``key`` is stable across runs for the same endpoint and policy (it never
    contains the random attacker token), so stored probes can be upserted.
    ``headers`` are exactly the headers we put on the wire.
    """

    key: str
    kind: ProbeKind
    method: str
    url: str
    origin: ProbeOrigin
    headers: Headers
    cors_request: CorsRequest
    purpose: PreflightPurpose | None = None
    # Names (lowercase) of headers whose values are the user's secrets (an API
    # key given with --header): sent, never written into reports or the database.
    secret_headers: frozenset[str] = frozenset()

    @property
    def public_headers(self) -> Headers:
        """``headers`` with secret values redacted: what reports and storage may show."""
        return self.headers.redacted(self.secret_headers)

    @property
    def credentialed(self) -> bool:
        """The probe looks like a credentialed browser request (it carries a cookie)."""
        return "cookie" in self.headers


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """Tunables of the probe plan."""

    send_unsafe_methods: bool = False  # send POST/PUT/DELETE as actual requests (off: GET)
    extra_request_headers: tuple[tuple[str, str], ...] = field(default=())


def actual_method(endpoint: Endpoint, settings: PlanSettings) -> str:
    method = endpoint.method.upper()
    if method in SAFE_ACTUAL_METHODS or settings.send_unsafe_methods:
        return method
    return "GET"


def error_path_url(url: str, token: str) -> str:
    """A sibling path that should not exist: the endpoint's path plus a random segment."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + f"/cors-scanner-missing-{token}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def page_request(endpoint: Endpoint, policy: Policy, origin: ProbeOrigin) -> CorsRequest:
    """The request a page at ``origin`` makes to this endpoint, credentialed.

    A legitimate front end sends the request headers its policy lists; an
    attacker's page sends none it does not need.
    """
    headers = Headers()
    if origin.trusted and origin.kind is VariantKind.ALLOWED:
        headers = Headers.of([(h, "1") for h in policy.allowed_headers])
    return CorsRequest(origin.value, endpoint.method.upper(), headers, credentials=True)


def plan_probes(
    endpoint: Endpoint,
    policy: Policy,
    origins: Sequence[ProbeOrigin],
    *,
    token: str,
    settings: PlanSettings = PlanSettings(),
) -> tuple[ProbeRequest, ...]:
    """Every probe for one endpoint, in a deterministic order.

    - one simple (credentialed) request per origin;
    - per origin whose page request needs a preflight (a non-safelisted method, or
      the policy's request headers for allowed origins), that preflight;
    - one reflection preflight (an unusual method and a random header name);
    - one attacker preflight with the private-network request header;
    - one error-path request with a legitimate origin (or the foreign one when
      the policy names none).
    """
    method = endpoint.method.upper()
    wire_method = actual_method(endpoint, settings)
    extra = settings.extra_request_headers
    secrets = frozenset(name.lower() for name, _ in extra)
    seen: Counter[str] = Counter()
    probes: list[ProbeRequest] = []

    def key(prefix: str, origin: ProbeOrigin) -> str:
        base = f"{prefix}:{origin.kind.value}"
        seen[base] += 1
        return f"{base}:{seen[base] - 1}"

    for origin in origins:
        page = page_request(endpoint, policy, origin)
        headers = Headers.of([("Origin", origin.value), ("Cookie", PROBE_COOKIE), *extra])
        probes.append(
            ProbeRequest(
                key=key("simple", origin),
                kind=ProbeKind.SIMPLE,
                method=wire_method,
                url=endpoint.url,
                origin=origin,
                headers=headers,
                cors_request=page,
                secret_headers=secrets,
            )
        )
        # The verdict for a page at this origin counts the preflight it needs:
        # send that preflight too (never credentialed, as browsers do).
        if needs_preflight(page) or needs_preflight(replace(page, credentials=False)):
            legitimate = origin.trusted and origin.kind is VariantKind.ALLOWED
            probes.append(
                _preflight(
                    key("preflight", origin),
                    endpoint.url,
                    origin,
                    replace(page, credentials=policy.allow_credentials if legitimate else False),
                    PreflightPurpose.LEGITIMATE if legitimate else PreflightPurpose.ORIGIN,
                    extra,
                )
            )

    legit = [
        o for o in origins if o.trusted and o.browser_sendable and o.kind is VariantKind.ALLOWED
    ]
    foreign = next((o for o in origins if o.kind is VariantKind.ARBITRARY), None)

    reflector = legit[0] if legit else foreign
    if reflector is not None:
        probe_header = Headers.of([(f"x-cors-scanner-{token}", "1")])
        probes.append(
            _preflight(
                key("preflight-reflection", reflector),
                endpoint.url,
                reflector,
                CorsRequest(reflector.value, UNUSUAL_METHOD, probe_header, False),
                PreflightPurpose.REFLECTION,
                extra,
            )
        )
    if foreign is not None:
        attack_method = method if method not in SAFELISTED_METHODS else "PUT"
        probes.append(
            _preflight(
                key("preflight-attacker", foreign),
                endpoint.url,
                foreign,
                CorsRequest(foreign.value, attack_method, Headers(), False),
                PreflightPurpose.ATTACKER,
                (*extra, ("Access-Control-Request-Private-Network", "true")),
            )
        )

    error_origin = legit[0] if legit else foreign
    if error_origin is not None:
        probes.append(
            ProbeRequest(
                key=key("error", error_origin),
                kind=ProbeKind.ERROR_PATH,
                method="GET",
                url=error_path_url(endpoint.url, token),
                origin=error_origin,
                headers=Headers.of(
                    [("Origin", error_origin.value), ("Cookie", PROBE_COOKIE), *extra]
                ),
                cors_request=CorsRequest(error_origin.value, "GET", Headers(), credentials=True),
                secret_headers=secrets,
            )
        )
    return tuple(probes)


def _preflight(
    key: str,
    url: str,
    origin: ProbeOrigin,
    request: CorsRequest,
    purpose: PreflightPurpose,
    extra: Sequence[tuple[str, str]],
) -> ProbeRequest:
    # Fetch, CORS-preflight fetch: Origin, ACRM, and ACRH with the unsafe header
    # names lowercased, sorted and comma-joined. Never credentials.
    lines = list(preflight_request_headers(request))
    return ProbeRequest(
        key=key,
        kind=ProbeKind.PREFLIGHT,
        method="OPTIONS",
        url=url,
        origin=origin,
        headers=Headers.of([*lines, *extra]),
        cors_request=request,
        purpose=purpose,
        secret_headers=frozenset(name.lower() for name, _ in extra),
    )
