"""Sample scans for the report tests: real assessments from pure "servers".

Each server maps a planned probe request to (status, headers); ``assessment``
plans the probes for a URL the way a scan does, answers them, and runs
``scanner.core.checks.assess``, so the renderers see exactly what a scan yields:

- ``reflector``: echoes any Origin with credentials (a critical finding);
- ``wildcard``: ``Access-Control-Allow-Origin: *`` (info under an empty policy);
- ``None``: every probe refused (ProbeError.CONNECT): unreachable;
- ``clean``: an exact allowlist with Vary and working preflights;
- ``hostile``: an ACAO value carrying NUL, ``]]>`` and ``<script>`` (invalid_acao).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanner.core.checks import Assessment, assess
from scanner.core.headers import Headers
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import Endpoint, PlanSettings, ProbeKind, ProbeRequest, plan_probes
from scanner.core.policy import Policy
from scanner.core.variants import probe_origins
from scanner.hostnames import default_public_suffixes

SCHEMA_PATH = Path(__file__).with_name("sarif-schema-2.1.0.json")
APP = "https://app.acme.com"
APP_POLICY = Policy.build(allowed_origins=[APP], allow_credentials=True)
HOSTILE_ACAO = "https://x.example\x00]]><script>alert(1)</script>"
STARTED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=2.5)

Server = Callable[[ProbeRequest], tuple[int, list[tuple[str, str]]]]


def _origin(request: ProbeRequest) -> str:
    return request.headers.combined("origin") or ""


def reflector(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
    headers = [
        ("Access-Control-Allow-Origin", _origin(request)),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]
    if request.kind is ProbeKind.PREFLIGHT:
        return 204, [*headers, ("Access-Control-Allow-Methods", "GET, POST, PUT")]
    return (404 if request.kind is ProbeKind.ERROR_PATH else 200), headers


def wildcard(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
    status = 204 if request.kind is ProbeKind.PREFLIGHT else 200
    return status, [("Access-Control-Allow-Origin", "*")]


def clean(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
    status = {ProbeKind.PREFLIGHT: 204, ProbeKind.ERROR_PATH: 404}.get(request.kind, 200)
    headers = [("Vary", "Origin")]
    if _origin(request) == APP:
        headers += [
            ("Access-Control-Allow-Origin", APP),
            ("Access-Control-Allow-Credentials", "true"),
        ]
        if request.kind is ProbeKind.PREFLIGHT:
            headers.append(("Access-Control-Allow-Methods", "GET, POST"))
    return status, headers


def hostile(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
    return 200, [
        ("Access-Control-Allow-Origin", HOSTILE_ACAO),
        ("Vary", "Origin\x0b\x1f]]>"),
        ("X-Not-Cors", "ignored"),
    ]


def assessment(
    url: str,
    server: Server | None,
    policy: Policy = APP_POLICY,
    *,
    method: str = "GET",
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Assessment:
    """Plan the probes for ``url``, answer each with ``server`` (None: refused), assess."""
    endpoint = Endpoint(url, method)
    origins = probe_origins(url, policy, suffixes=default_public_suffixes(), token="tok1")
    settings = PlanSettings(extra_request_headers=extra_headers)
    plan = plan_probes(endpoint, policy, origins, token="tok1", settings=settings)
    observations = []
    for request in plan:
        if server is None:
            observations.append(
                Observation(request, error=ProbeError.CONNECT, error_detail="Connection refused")
            )
        else:
            status, headers = server(request)
            observations.append(Observation(request, status=status, headers=Headers.of(headers)))
    return assess(endpoint, policy, observations)
