"""The built-in demo target: one path per CORS behaviour, broken the way real servers break.

``cors-scanner demo`` serves :func:`demo_app` so users can try the scanner on
something safe; the integration tests scan every path of :data:`DEMO_CASES`
and compare the findings with the case's expectation. Each path imitates a
real-world mistake (a regex without ``$``, ``endswith`` without a dot, nginx
``add_header`` without ``always``...) through one small CORS layer,
:class:`CorsBehaviour`, whose origin matcher is the buggy part.

Every path answers any method; its children (``/reflect/anything``) answer
404 through the same CORS layer, as an application's middleware would, so
the scanner's error-path probe sees the same headers as the normal path
unless the case says otherwise. ``OPTIONS`` is the preflight. All demo
origins use the reserved ``.test`` top-level domain.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from scanner.core.policy import Policy
from scanner.core.severity import Severity

__all__ = [
    "APP_ORIGIN",
    "DEMO_CASES",
    "CorsBehaviour",
    "DemoCase",
    "ExpectedFinding",
    "case_for",
    "demo_app",
    "render_index",
]

APP_ORIGIN = "https://app.acme.test"
"""The one legitimate front end of the demo: what most demo policies allow."""

ADMIN_ORIGIN = "https://admin.acme.test"

Matcher = Callable[[str], str | None]
"""Origin header value in, Access-Control-Allow-Origin value out (None: no header)."""


# -- origin matchers: the code people write ---------------------------------------


def _exact(*allowed: str) -> Matcher:
    """``if origin in ALLOWED: echo it`` — correct when ALLOWED holds exact origins."""
    accepted = frozenset(allowed)

    def match(origin: str) -> str | None:
        return origin if origin in accepted else None

    return match


def _reflect(origin: str) -> str | None:
    """``cors({origin: true})``: whatever arrives is allowed."""
    return origin


def _static(value: str) -> Matcher:
    """A constant header (``*``, or one hard-coded origin), whatever the request says."""

    def match(origin: str) -> str | None:
        return value

    return match


def _regex(pattern: str) -> Matcher:
    """``if re.match(PATTERN, origin)``: ``re.match`` anchors the start only, like ``^``."""
    compiled = re.compile(pattern)

    def match(origin: str) -> str | None:
        return origin if compiled.match(origin) else None

    return match


def _endswith(suffix: str) -> Matcher:
    """``if origin.endswith(SUFFIX)``: no dot boundary, no scheme check."""

    def match(origin: str) -> str | None:
        return origin if origin.endswith(suffix) else None

    return match


def _either(*matchers: Matcher) -> Matcher:
    """An allowlist plus an extra rule someone added later."""

    def match(origin: str) -> str | None:
        return next((found for m in matchers if (found := m(origin)) is not None), None)

    return match


def _configured_with_slash(*entries: str) -> Matcher:
    """Allowlist entries copied from the address bar (``https://app.acme.test/``),
    matched leniently, then echoed *as configured*: the slash reaches the browser."""
    by_origin = {entry.rstrip("/"): entry for entry in entries}

    def match(origin: str) -> str | None:
        return by_origin.get(origin)

    return match


# -- the CORS layer ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorsBehaviour:
    """How one demo path answers, as a small CORS middleware with the knobs servers get wrong.

    ``match`` turns the Origin into the Access-Control-Allow-Origin value
    (None: no CORS layer at all, and ``OPTIONS`` is not routed, 405);
    ``credentials`` adds ``Access-Control-Allow-Credentials: true`` with it;
    ``vary`` adds ``Vary: Origin`` to every response (allowed or not);
    ``on_errors`` false drops every CORS header from 4xx/5xx (nginx
    ``add_header`` without ``always``); ``extra_acao`` is a second ACAO line a
    proxy adds to every response. Preflights answer ``preflight_status``;
    ``methods``/``allow_headers`` are the fixed lists sent to allowed origins
    unless ``reflect_preflight`` echoes the request's; ``max_age`` is seconds;
    ``private_network`` answers ``Access-Control-Allow-Private-Network: true``
    to every preflight that asks, whoever asks.
    """

    match: Matcher | None = None
    credentials: bool = False
    vary: bool = True
    on_errors: bool = True
    extra_acao: str | None = None
    preflight_status: int = 204
    methods: str = "GET, POST"
    allow_headers: str = "Content-Type"
    reflect_preflight: bool = False
    max_age: int | None = 600
    private_network: bool = False

    def actual_headers(self, origin: str | None, status: int) -> list[tuple[str, str]]:
        """Header lines for a non-preflight response with this status."""
        if self.match is None or (status >= 400 and not self.on_errors):
            return []
        lines = self._origin_lines(origin)
        if self.vary:
            lines.append(("Vary", "Origin"))
        return lines

    def preflight(self, request: web.BaseRequest) -> tuple[int, list[tuple[str, str]]]:
        """Status and header lines for an OPTIONS request."""
        if self.match is None:
            return 405, [("Allow", "GET, HEAD")]
        if self.preflight_status >= 300:
            # The framework answers: the CORS layer never sees the request.
            return self.preflight_status, []
        origin = request.headers.get("Origin")
        lines = self._origin_lines(origin)
        allowed = any(name == "Access-Control-Allow-Origin" for name, _ in lines)
        if allowed:
            asked_method = request.headers.get("Access-Control-Request-Method")
            asked_headers = request.headers.get("Access-Control-Request-Headers")
            if self.reflect_preflight:
                if asked_method:
                    lines.append(("Access-Control-Allow-Methods", asked_method))
                if asked_headers:
                    lines.append(("Access-Control-Allow-Headers", asked_headers))
            else:
                lines.append(("Access-Control-Allow-Methods", self.methods))
                lines.append(("Access-Control-Allow-Headers", self.allow_headers))
            if self.max_age is not None:
                lines.append(("Access-Control-Max-Age", str(self.max_age)))
        asks_private = request.headers.get("Access-Control-Request-Private-Network") == "true"
        if self.private_network and asks_private:
            lines.append(("Access-Control-Allow-Private-Network", "true"))
        if self.vary:
            lines.append(("Vary", "Origin"))
        return self.preflight_status, lines

    def _origin_lines(self, origin: str | None) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        acao = self.match(origin) if self.match is not None and origin is not None else None
        if acao is not None:
            lines.append(("Access-Control-Allow-Origin", acao))
            if self.credentials:
                lines.append(("Access-Control-Allow-Credentials", "true"))
        if self.extra_acao is not None:
            lines.append(("Access-Control-Allow-Origin", self.extra_acao))
        return lines


# -- the cases --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedFinding:
    """A finding the scanner must report for a demo path.

    ``proof`` is an Origin value that must appear in the finding's evidence;
    ``{token}`` in it stands for the scan's attacker token.
    """

    rule_id: str
    origin_class: str
    severity: Severity
    proof: str

    def proof_for(self, token: str) -> str:
        """``proof`` with the scan's attacker token filled in."""
        return self.proof.format(token=token)


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One demo path: how it behaves, the policy to scan it with, what the scanner must find.

    ``policy_kwargs`` are keyword arguments for :meth:`Policy.build`;
    ``expected`` is empty for the correct paths (zero findings).
    """

    path: str
    title: str
    imitates: str
    behaviour: CorsBehaviour
    policy_kwargs: Mapping[str, Any]
    expected: tuple[ExpectedFinding, ...] = ()
    method: str = "GET"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(e.rule_id for e in self.expected)

    @property
    def correct(self) -> bool:
        """True for the paths configured right: the scanner must report nothing."""
        return not self.expected

    def policy(self) -> Policy:
        return Policy.build(**self.policy_kwargs)

    def scan_flags(self) -> tuple[str, ...]:
        """The policy as ``cors-scanner scan`` flags."""
        kwargs = self.policy_kwargs
        flags: list[str] = []
        if self.method != "GET":
            flags += ["--method", self.method]
        for origin in kwargs.get("allowed_origins", ()):
            flags += ["--allow-origin", origin]
        if kwargs.get("allow_credentials"):
            flags.append("--allow-credentials")
        for method in kwargs.get("allowed_methods", ()):
            flags += ["--allow-method", method]
        for header in kwargs.get("allowed_headers", ()):
            flags += ["--allow-header", header]
        if kwargs.get("max_age") is not None:
            flags += ["--max-age", str(kwargs["max_age"])]
        if kwargs.get("public"):
            flags.append("--public")
        return tuple(flags)


def _policy(**kwargs: Any) -> Mapping[str, Any]:
    # Read-only, so the shared table cannot be changed by a test or a caller.
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


# The demo's usual policy: one front end, with cookies.
_APP_WITH_CREDENTIALS = _policy(allowed_origins=[APP_ORIGIN], allow_credentials=True)
_ARBITRARY = "https://{token}.attacker.example"


def _expect(rule_id: str, origin_class: str, severity: Severity, proof: str) -> ExpectedFinding:
    return ExpectedFinding(rule_id, origin_class, severity, proof)


DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase(
        "/reflect",
        "Echoes any Origin, without credentials",
        "cors({ origin: true }) — Express's cors package told to allow every origin",
        CorsBehaviour(_reflect),
        _policy(allowed_origins=[APP_ORIGIN]),
        (_expect("reflect_any_origin", "arbitrary_origin", Severity.HIGH, _ARBITRARY),),
    ),
    DemoCase(
        "/reflect-credentials",
        "Echoes any Origin and allows credentials",
        "cors({ origin: true, credentials: true })",
        CorsBehaviour(_reflect, credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect(
                "reflect_any_origin_credentials", "arbitrary_origin", Severity.CRITICAL, _ARBITRARY
            ),
        ),
    ),
    DemoCase(
        "/null",
        "Trusts the 'null' origin, with credentials",
        "ALLOWED = ['https://app.acme.test', 'null'] — 'null' added for local file:// testing",
        CorsBehaviour(_exact(APP_ORIGIN, "null"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (_expect("null_origin_trusted", "null", Severity.CRITICAL, "null"),),
    ),
    DemoCase(
        "/prefix",
        "Regex without '$': any origin that starts with the trusted one",
        r"re.match(r'^https://app\.acme\.test', origin) — no end anchor",
        CorsBehaviour(_regex(r"^https://app\.acme\.test"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect(
                "prefix_match",
                "prefix_match",
                Severity.CRITICAL,
                "https://app.acme.test.attacker.example",
            ),
        ),
    ),
    DemoCase(
        "/suffix",
        "endswith('acme.test'): no dot boundary, no scheme check",
        "origin.endswith('acme.test')",
        CorsBehaviour(_endswith("acme.test"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect("suffix_match", "suffix_match", Severity.CRITICAL, "https://{token}acme.test"),
            # Separate defect: the check ignores the scheme, so http pages pass too.
            _expect("http_origin_trusted", "http_downgrade", Severity.HIGH, "http://app.acme.test"),
        ),
    ),
    DemoCase(
        "/unescaped-dot",
        "Regex with unescaped dots: '.' matches any character",
        "re.match(r'^https://app.acme.test$', origin)",
        CorsBehaviour(_regex(r"^https://app.acme.test$"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (_expect("unescaped_dot", "unescaped_dot", Severity.CRITICAL, "https://appxacme.test"),),
    ),
    DemoCase(
        "/subdomain",
        "Trusts every subdomain while only app.acme.test needs access",
        r"re.match(r'^https://([a-z0-9-]+\.)*acme\.test$', origin)",
        CorsBehaviour(_regex(r"^https://([a-z0-9-]+\.)*acme\.test$"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect(
                "any_subdomain_trusted",
                "any_subdomain",
                Severity.HIGH,
                "https://{token}.app.acme.test",
            ),
        ),
    ),
    DemoCase(
        "/http",
        "Trusts the http:// origin of the front end as well as https://",
        r"re.match(r'^https?://app\.acme\.test$', origin)",
        CorsBehaviour(_regex(r"^https?://app\.acme\.test$"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (_expect("http_origin_trusted", "http_downgrade", Severity.HIGH, "http://app.acme.test"),),
    ),
    DemoCase(
        "/special-chars",
        "Regex that stops a '.' after the host, but not '_' and friends",
        r"re.match(r'^https://app\.acme\.test([^.].*)?$', origin) — meant to allow a port",
        CorsBehaviour(_regex(r"^https://app\.acme\.test([^.].*)?$"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect(
                "special_chars_bypass",
                "special_chars",
                Severity.CRITICAL,
                "https://app.acme.test_.attacker.example",
            ),
        ),
    ),
    DemoCase(
        "/third-party",
        "Trusts every *.github.io page",
        r"ALLOWED + re.match(r'^https://[a-z0-9-]+\.github\.io$') for the docs site",
        CorsBehaviour(
            _either(_exact(APP_ORIGIN), _regex(r"^https://[a-z0-9-]+\.github\.io$")),
            credentials=True,
        ),
        _APP_WITH_CREDENTIALS,
        (
            _expect(
                "third_party_origin_trusted",
                "third_party",
                Severity.CRITICAL,
                "https://{token}.github.io",
            ),
        ),
    ),
    DemoCase(
        "/localhost",
        "Trusts the developer's http://localhost:3000 in production",
        "ALLOWED = ['https://app.acme.test', 'http://localhost:3000']",
        CorsBehaviour(_exact(APP_ORIGIN, "http://localhost:3000"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (_expect("localhost_trusted", "localhost", Severity.HIGH, "http://localhost:3000"),),
    ),
    DemoCase(
        "/wildcard-credentials",
        "'*' together with Access-Control-Allow-Credentials: true",
        "add_header Access-Control-Allow-Origin *; add_header Access-Control-Allow-Credentials "
        "true; — on an endpoint meant to be public",
        CorsBehaviour(_static("*"), credentials=True, vary=False),
        _policy(public=True),
        (_expect("wildcard_with_credentials", "wildcard", Severity.LOW, _ARBITRARY),),
    ),
    DemoCase(
        "/wildcard",
        "'*' on an endpoint only app.acme.test should read",
        "add_header Access-Control-Allow-Origin * always;",
        CorsBehaviour(_static("*"), vary=False),
        _policy(allowed_origins=[APP_ORIGIN]),
        (_expect("wildcard_public", "wildcard", Severity.HIGH, APP_ORIGIN),),
    ),
    DemoCase(
        "/no-vary",
        "Origin-dependent Access-Control-Allow-Origin without 'Vary: Origin'",
        "if origin in ALLOWED: response['Access-Control-Allow-Origin'] = origin (no Vary)",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, vary=False),
        _APP_WITH_CREDENTIALS,
        (_expect("missing_vary_origin", "vary", Severity.MEDIUM, APP_ORIGIN),),
    ),
    DemoCase(
        "/preflight-reflect",
        "Preflight echoes whatever method and headers are asked for",
        "Access-Control-Allow-Methods = request's Access-Control-Request-Method (and headers)",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, reflect_preflight=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect("preflight_reflects_any_method", "method", Severity.LOW, APP_ORIGIN),
            _expect("preflight_reflects_any_header", "header", Severity.LOW, APP_ORIGIN),
        ),
    ),
    DemoCase(
        "/max-age",
        "Preflight results cached for a day",
        "Access-Control-Max-Age: 86400",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, max_age=86400),
        _APP_WITH_CREDENTIALS,
        (_expect("excessive_max_age", "max_age", Severity.LOW, APP_ORIGIN),),
    ),
    DemoCase(
        "/private-network",
        "Grants private network access to any origin that asks",
        "Access-Control-Allow-Private-Network: true on every preflight",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, private_network=True),
        _APP_WITH_CREDENTIALS,
        (_expect("private_network_any_origin", "private_network", Severity.HIGH, _ARBITRARY),),
    ),
    DemoCase(
        "/preflight-404",
        "PUT endpoint whose OPTIONS route is missing: the preflight gets 404",
        "app.put('/x', cors(opts), handler) without app.options('/x', cors(opts))",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, preflight_status=404),
        _policy(allowed_origins=[APP_ORIGIN], allow_credentials=True, allowed_methods=["PUT"]),
        (_expect("preflight_not_handled", "preflight", Severity.HIGH, APP_ORIGIN),),
        method="PUT",
    ),
    DemoCase(
        "/error-no-cors",
        "CORS headers only on 2xx responses",
        "nginx add_header Access-Control-Allow-Origin $cors_origin; (without 'always')",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, on_errors=False),
        _APP_WITH_CREDENTIALS,
        (_expect("cors_missing_on_error", "error_response", Severity.MEDIUM, APP_ORIGIN),),
    ),
    DemoCase(
        "/legit-blocked",
        "Answers the allowed origin with a trailing slash: the browser blocks it",
        "ALLOWED = ['https://app.acme.test/'] copied from the address bar, echoed as configured",
        CorsBehaviour(_configured_with_slash(APP_ORIGIN + "/"), credentials=True),
        _APP_WITH_CREDENTIALS,
        (
            _expect("legit_origin_blocked", "allowed", Severity.HIGH, APP_ORIGIN),
            # The doc's table lists a trailing slash under both rules: the value
            # itself is malformed, and the front end is what breaks.
            _expect("invalid_acao", "acao", Severity.MEDIUM, APP_ORIGIN),
        ),
    ),
    DemoCase(
        "/invalid-acao",
        "Two Access-Control-Allow-Origin lines: the app's and the proxy's",
        "the app echoes allowed origins and nginx adds "
        "'add_header Access-Control-Allow-Origin https://app.acme.test always;'",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, extra_acao=APP_ORIGIN),
        _APP_WITH_CREDENTIALS,
        (
            _expect("invalid_acao", "acao", Severity.MEDIUM, APP_ORIGIN),
            # The duplicate blocks the front end too: the same cause, its impact.
            _expect("legit_origin_blocked", "allowed", Severity.HIGH, APP_ORIGIN),
        ),
    ),
    DemoCase(
        "/good",
        "Correct: exact allowlist, credentials, Vary, fixed preflight lists, errors too",
        "cors({ origin: ['https://app.acme.test', 'https://admin.acme.test'], credentials: "
        "true, methods: ['GET', 'POST', 'PUT'], allowedHeaders: ['Content-Type', "
        "'Authorization'], maxAge: 600 }) registered before the routes",
        CorsBehaviour(
            _exact(APP_ORIGIN, ADMIN_ORIGIN),
            credentials=True,
            methods="GET, POST, PUT",
            allow_headers="Content-Type, Authorization",
        ),
        _policy(
            allowed_origins=[APP_ORIGIN, ADMIN_ORIGIN],
            allow_credentials=True,
            allowed_methods=["GET", "POST", "PUT"],
            allowed_headers=["Content-Type", "Authorization"],
            max_age=600,
        ),
    ),
    DemoCase(
        "/good-public",
        "Correct: '*' without credentials on an endpoint declared public",
        "add_header Access-Control-Allow-Origin * always; for open data",
        CorsBehaviour(_static("*"), vary=False, methods="GET, HEAD"),
        _policy(public=True),
    ),
    DemoCase(
        "/good-put",
        "Correct: a PUT endpoint with a proper preflight",
        "app.options('/x', cors(opts)); app.put('/x', cors(opts), handler)",
        CorsBehaviour(_exact(APP_ORIGIN), credentials=True, methods="PUT"),
        _policy(allowed_origins=[APP_ORIGIN], allow_credentials=True, allowed_methods=["PUT"]),
        method="PUT",
    ),
    DemoCase(
        "/closed",
        "Correct: no CORS at all, and the policy names no cross-origin reader",
        "no CORS middleware",
        CorsBehaviour(None),
        _policy(),
    ),
)


def case_for(path: str) -> DemoCase:
    """The demo case served at ``path`` (KeyError when there is none)."""
    for case in DEMO_CASES:
        if case.path == path:
            return case
    raise KeyError(path)


# -- the application ----------------------------------------------------------------

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _case_handler(case: DemoCase) -> _Handler:
    behaviour = case.behaviour

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            status, lines = behaviour.preflight(request)
            return web.Response(status=status, headers=CIMultiDict(lines))
        # Children of a demo path do not exist: the application's 404, through its CORS layer.
        status = 404 if request.match_info.get("tail") is not None else 200
        lines = behaviour.actual_headers(request.headers.get("Origin"), status)
        body = (
            {"error": "not found"}
            if status == 404
            else {"path": case.path, "user": "alice@acme.test", "balance": 1234}
        )
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers=CIMultiDict(lines),
        )

    return handle


def _index_handler(cases: tuple[DemoCase, ...]) -> _Handler:
    async def index(request: web.Request) -> web.StreamResponse:
        base = f"{request.scheme}://{request.host}"
        return web.Response(text=render_index(cases, base), content_type="text/html")

    return index


def render_index(cases: tuple[DemoCase, ...], base_url: str) -> str:
    """The index page: each path, its bug, what it imitates, and the command that scans it."""
    rows = []
    for case in cases:
        url = base_url + case.path
        command = " ".join(["cors-scanner", "scan", url, *case.scan_flags()])
        found = ", ".join(case.rule_ids) or "nothing (configured correctly)"
        rows.append(
            "<tr>"
            f"<td><a href='{html.escape(case.path)}'>{html.escape(case.method)} "
            f"{html.escape(case.path)}</a></td>"
            f"<td>{html.escape(case.title)}<br><small>{html.escape(case.imitates)}</small></td>"
            f"<td><code>{html.escape(command)}</code></td>"
            f"<td>{html.escape(found)}</td>"
            "</tr>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>cors-scanner demo target</title></head><body>"
        "<h1>cors-scanner demo target</h1>"
        "<p>Each path below answers like a real server that gets CORS wrong (or right). "
        "Scan one with the command next to it; the last column is what the scanner reports. "
        "Origins are on the reserved <code>.test</code> domain; nothing here is real.</p>"
        "<table border='1' cellpadding='4'>"
        "<tr><th>Path</th><th>Behaviour</th><th>Scan it with</th><th>Expected findings</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def demo_app(cases: tuple[DemoCase, ...] = DEMO_CASES) -> web.Application:
    """The demo target: ``/`` lists the cases, each case's path (and its children) serves it."""
    app = web.Application()
    app.router.add_get("/", _index_handler(cases))
    for case in cases:
        handler = _case_handler(case)
        app.router.add_route("*", case.path, handler)
        app.router.add_route("*", case.path + "/{tail:.+}", handler)
    return app
