"""The requests to send to one endpoint: simple requests and preflights, per origin.

The plan is pure data; ``scanner.prober`` turns it into sockets. Every probe
says which browser request it stands for (``cors_request``), so the verdict
can be computed from the exchange alone.

Two rules shape every probe, as a browser shapes its requests:

- The front end's own request headers (``--header``, or stored with the
  endpoint: ``Authorization``, ``Content-Type: application/json``...) are part
  of the page's request. Their *names* go into the legitimate preflight's
  ``Access-Control-Request-Headers`` (a browser asks for them); their *values*
  ride only on actual requests, never on a preflight (a browser never sends
  credentials or ``Authorization`` on one). Attacker-origin actual requests
  carry them too, so an authentication layer in front of the CORS middleware
  lets them through to it, but they are judged as an attacker's page that
  sets none: such a page cannot know the user's token, only ride on cookies.
  Their values are secrets: redacted in everything a report shows.
- One preflight dimension per probe: a preflight that asks for an unusual
  method *and* an unusual header tells nothing about headers when the server
  refuses the method (Flask-CORS and aiohttp-cors then send no CORS headers).
  Method reflection is asked with no unusual header, header reflection with
  the endpoint's own method, private network access with the endpoint's own
  method and nothing else unusual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from scanner.core.browser import (
    CorsRequest,
    needs_preflight,
    normalize_method,
    preflight_request_headers,
)
from scanner.core.headers import MIN_ECHOED_SECRET, REDACTED, Headers
from scanner.core.origin import Origin
from scanner.core.policy import Policy
from scanner.core.variants import ProbeOrigin, VariantKind
from scanner.errors import InvalidURL

SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Methods we send as the "actual" request without being told to: they must not
# change state on the target. Anything else is approximated with GET.
SAFE_ACTUAL_METHODS = frozenset({"GET", "HEAD"})
# A credentialed browser request carries cookies; some servers (and some
# middleware releases) reflect the Origin or add ACAC only when one is present.
PROBE_COOKIE = "cors_scanner_probe=1"
# A method no legitimate front end uses: echoed back, it shows ACAM reflection.
UNUSUAL_METHOD = "PROPFIND"
PRIVATE_NETWORK_REQUEST = ("Access-Control-Request-Private-Network", "true")


class ProbeKind(StrEnum):
    SIMPLE = "simple"  # the actual request: GET/HEAD with Origin and a cookie
    PREFLIGHT = "preflight"  # OPTIONS with Access-Control-Request-*
    ERROR_PATH = "error_path"  # an actual request to a path that should answer 4xx/5xx


class PreflightPurpose(StrEnum):
    """What a preflight asks. Stable: stored probes carry the value."""

    LEGITIMATE = "legitimate"  # the preflight a legitimate front end sends for this endpoint
    ORIGIN = "origin"  # the preflight any other origin's page needs for this endpoint's method
    REFLECT_METHOD = "reflect_method"  # an unusual method, no unusual header: is it echoed?
    REFLECT_HEADER = "reflect_header"  # a random header, the endpoint's method: is it echoed?
    ATTACKER = "attacker"  # a foreign origin asking for private network access, endpoint's method
    # Runs stored before the split asked method and header in one preflight;
    # kept so they still load. Never planned any more.
    REFLECTION = "reflection"


# Preflights whose Access-Control-Request-Headers names a header after the
# run's random token: a diff across runs must not see that name as a change.
RANDOM_HEADER_PURPOSES = frozenset({PreflightPurpose.REFLECT_HEADER, PreflightPurpose.REFLECTION})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint to probe: method and absolute URL, and the front end's own request headers.

    ``method`` is kept as the front end sends it (``patch`` stays ``patch``:
    only DELETE GET HEAD OPTIONS POST PUT are uppercased by ``fetch()``, see
    ``normalize_method``). ``headers`` are request headers the front end sets
    on every call (an API key, ``Content-Type: application/json``); their
    values are secrets.
    """

    url: str
    method: str = "GET"
    name: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

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
    # The secret values themselves, so a target that echoes one back (in any
    # response header) cannot put it in a report either. On every probe of the
    # endpoint, preflights included, though preflights never send them.
    secret_values: tuple[str, ...] = ()

    @property
    def public_headers(self) -> Headers:
        """``headers`` with secret values redacted: what reports and storage may show."""
        return self.headers.redacted(self.secret_headers, self.secret_values)

    def scrub(self, text: str) -> str:
        """``text`` (anything the target's answer went into: a reason phrase, an error, a
        verdict quoting a header) with every secret value of this probe redacted."""
        for secret in sorted(self.secret_values, key=len, reverse=True):
            if len(secret) >= MIN_ECHOED_SECRET and secret in text:
                text = text.replace(secret, REDACTED)
        return text

    @property
    def credentialed(self) -> bool:
        """The probe looks like a credentialed browser request (it carries a cookie)."""
        return "cookie" in self.headers


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """Tunables of the probe plan."""

    send_unsafe_methods: bool = False  # send POST/PUT/DELETE as actual requests (off: GET)
    # The front end's request headers on every endpoint (``scan --header``),
    # before the endpoint's own (Endpoint.headers).
    extra_request_headers: tuple[tuple[str, str], ...] = field(default=())


def actual_method(endpoint: Endpoint, settings: PlanSettings) -> str:
    """The method of the actual requests: the endpoint's when safe (or allowed), else GET."""
    method = normalize_method(endpoint.method)
    if method in SAFE_ACTUAL_METHODS or settings.send_unsafe_methods:
        return method
    return "GET"


def error_path_url(url: str, token: str) -> str:
    """A sibling path that should not exist: the endpoint's path plus a random segment."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + f"/cors-scanner-missing-{token}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def front_end_headers(
    endpoint: Endpoint, settings: PlanSettings = PlanSettings()
) -> tuple[tuple[str, str], ...]:
    """The front end's own request headers for this endpoint: scan-wide first, then its own."""
    if not settings.extra_request_headers:
        return endpoint.headers
    return (*settings.extra_request_headers, *endpoint.headers)


def url_origin(url: str) -> str | None:
    """The serialised origin of ``url``, None when it has none (not an absolute URL)."""
    try:
        return Origin.from_url(url).serialize()
    except InvalidURL:
        return None


def page_request(
    endpoint: Endpoint,
    policy: Policy,
    origin: ProbeOrigin,
    *,
    front_headers: Sequence[tuple[str, str]] | None = None,
    target_origin: str | None = None,
) -> CorsRequest:
    """The request a page at ``origin`` makes to this endpoint, credentialed.

    A legitimate front end sends the request headers its policy lists and its
    own (``front_headers``, by default the endpoint's); an attacker's page
    sends none it does not need. ``target_origin`` is the endpoint URL's
    origin (computed when not given): a page there makes no CORS request.
    """
    headers = Headers()
    if origin.trusted and origin.kind is VariantKind.ALLOWED:
        own = endpoint.headers if front_headers is None else front_headers
        headers = Headers((*((h, "1") for h in policy.allowed_headers), *own))
    if target_origin is None:
        target_origin = url_origin(endpoint.url)
    return CorsRequest(
        origin.value,
        normalize_method(endpoint.method),
        headers,
        credentials=True,
        target_origin=target_origin,
    )


def secret_values(front: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The values to keep out of reports: each header value, and the credentials of
    ``Scheme credentials`` values (``Bearer x`` also hides a bare ``x`` echoed back)."""
    found: dict[str, None] = {}
    for _, value in front:
        text = value.strip()
        if not text:
            continue
        found[text] = None
        scheme, _, credentials = text.partition(" ")
        if scheme and credentials.strip():
            found[credentials.strip()] = None
    return tuple(found)


def plan_probes(
    endpoint: Endpoint,
    policy: Policy,
    origins: Sequence[ProbeOrigin],
    *,
    token: str,
    settings: PlanSettings = PlanSettings(),
    target_origin: str | None = None,
) -> tuple[ProbeRequest, ...]:
    """Every probe for one endpoint, in a deterministic order.

    - one simple (credentialed) request per origin;
    - per origin whose page request needs a preflight (a non-safelisted method,
      or the policy's and the front end's request headers for allowed origins),
      that preflight; none for the endpoint's own origin (same-origin: no CORS);
    - two reflection preflights, one dimension each: an unusual method, and a
      random header name with the endpoint's own method;
    - one attacker preflight asking for private network access;
    - one error-path request with a legitimate origin (or the foreign one when
      the policy names none).

    ``target_origin`` is the endpoint URL's serialised origin (computed when
    not given).
    """
    method = normalize_method(endpoint.method)
    wire_method = actual_method(endpoint, settings)
    front = front_end_headers(endpoint, settings)
    secret_names = frozenset(name.lower() for name, _ in front)
    secrets = secret_values(front)
    if target_origin is None:
        target_origin = url_origin(endpoint.url)
    # The front end's cookie, when it gave one, stands in for the dummy one.
    cookie = next((v for n, v in front if n.lower() == "cookie"), PROBE_COOKIE)
    wire_extra = tuple((n, v) for n, v in front if n.lower() != "cookie")
    seen: Counter[str] = Counter()
    probes: list[ProbeRequest] = []

    def key(prefix: str, origin: ProbeOrigin) -> str:
        base = f"{prefix}:{origin.kind.value}"
        seen[base] += 1
        return f"{base}:{seen[base] - 1}"

    def preflight(
        prefix: str,
        origin: ProbeOrigin,
        request: CorsRequest,
        purpose: PreflightPurpose,
        *extra: tuple[str, str],
    ) -> ProbeRequest:
        # Fetch, CORS-preflight fetch: Origin, ACRM, and ACRH with the unsafe
        # header names lowercased, sorted and comma-joined. Never credentials,
        # never the front end's header values.
        lines = preflight_request_headers(request).lines
        return ProbeRequest(
            key=key(prefix, origin),
            kind=ProbeKind.PREFLIGHT,
            method="OPTIONS",
            url=endpoint.url,
            origin=origin,
            headers=Headers((*lines, *extra)),
            cors_request=request,
            purpose=purpose,
            secret_headers=secret_names,
            secret_values=secrets,
        )

    for origin in origins:
        page = page_request(
            endpoint, policy, origin, front_headers=front, target_origin=target_origin
        )
        probes.append(
            ProbeRequest(
                key=key("simple", origin),
                kind=ProbeKind.SIMPLE,
                method=wire_method,
                url=endpoint.url,
                origin=origin,
                headers=Headers((("Origin", origin.value), ("Cookie", cookie), *wire_extra)),
                cors_request=page,
                secret_headers=secret_names,
                secret_values=secrets,
            )
        )
        # The verdict for a page at this origin counts the preflight it needs:
        # send that preflight too (never credentialed, as browsers do). A page
        # on the endpoint's own origin needs none: same-origin is not CORS.
        if page.cross_origin and needs_preflight(page):
            legitimate = origin.trusted and origin.kind is VariantKind.ALLOWED
            probes.append(
                preflight(
                    "preflight",
                    origin,
                    CorsRequest(
                        page.origin,
                        page.method,
                        page.headers,
                        policy.allow_credentials if legitimate else False,
                        target_origin,
                    ),
                    PreflightPurpose.LEGITIMATE if legitimate else PreflightPurpose.ORIGIN,
                )
            )

    legit = [
        o
        for o in origins
        if o.trusted
        and o.browser_sendable
        and o.kind is VariantKind.ALLOWED
        and o.value != target_origin
    ]
    foreign = next((o for o in origins if o.kind is VariantKind.ARBITRARY), None)

    reflector = legit[0] if legit else foreign
    if reflector is not None:
        probes.append(
            preflight(
                "preflight-reflect-method",
                reflector,
                CorsRequest(reflector.value, UNUSUAL_METHOD, Headers(), False, target_origin),
                PreflightPurpose.REFLECT_METHOD,
            )
        )
        random_header = Headers(((f"x-cors-scanner-{token}", "1"),))
        probes.append(
            preflight(
                "preflight-reflect-header",
                reflector,
                CorsRequest(reflector.value, method, random_header, False, target_origin),
                PreflightPurpose.REFLECT_HEADER,
            )
        )
    if foreign is not None:
        probes.append(
            preflight(
                "preflight-attacker",
                foreign,
                CorsRequest(foreign.value, method, Headers(), False, target_origin),
                PreflightPurpose.ATTACKER,
                PRIVATE_NETWORK_REQUEST,
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
                headers=Headers((("Origin", error_origin.value), ("Cookie", cookie), *wire_extra)),
                cors_request=CorsRequest(error_origin.value, "GET", Headers(), True, target_origin),
                secret_headers=secret_names,
                secret_values=secrets,
            )
        )
    return tuple(probes)


def replan(plan: Sequence[ProbeRequest], url: str, token: str) -> tuple[ProbeRequest, ...]:
    """``plan`` (from :func:`plan_probes`) for another URL of the same origin.

    Everything but the URLs depends only on the endpoint's origin, method and
    headers, the policy, the origins and the token: a scan of many paths of
    one API plans once and rebases the plan onto each path.
    """
    error_url = error_path_url(url, token)
    return tuple(
        ProbeRequest(
            p.key,
            p.kind,
            p.method,
            error_url if p.kind is ProbeKind.ERROR_PATH else url,
            p.origin,
            p.headers,
            p.cors_request,
            p.purpose,
            p.secret_headers,
            p.secret_values,
        )
        for p in plan
    )
