"""The probe plan: one preflight dimension per probe, methods as sent, front-end headers,
same-origin, redaction of secrets only."""

from __future__ import annotations

from scanner.core.headers import Headers
from scanner.core.observation import Observation
from scanner.core.plan import (
    PRIVATE_NETWORK_REQUEST,
    Endpoint,
    PlanSettings,
    PreflightPurpose,
    ProbeKind,
    ProbeRequest,
    plan_probes,
    replan,
)
from scanner.core.policy import Policy
from scanner.core.variants import probe_origins
from scanner.hostnames import default_public_suffixes

URL = "https://api.acme.com/v1/items"
APP = "https://app.acme.com"
SECRET = "Bearer s3cr3t-t0ken"
FRONT = (("Authorization", SECRET), ("Content-Type", "application/json"))


def plan(
    method: str = "GET",
    *,
    policy: Policy | None = None,
    front: tuple[tuple[str, str], ...] = (),
    url: str = URL,
) -> tuple[ProbeRequest, ...]:
    policy = policy or Policy.build(allowed_origins=[APP], allow_credentials=True)
    origins = probe_origins(url, policy, suffixes=default_public_suffixes(), token="tok")
    return plan_probes(
        Endpoint(url, method),
        policy,
        origins,
        token="tok",
        settings=PlanSettings(extra_request_headers=front),
    )


def by_purpose(probes: tuple[ProbeRequest, ...], purpose: PreflightPurpose) -> list[ProbeRequest]:
    return [p for p in probes if p.purpose is purpose]


def test_each_preflight_asks_one_unusual_thing() -> None:
    probes = plan("GET")
    [method] = by_purpose(probes, PreflightPurpose.REFLECT_METHOD)
    [header] = by_purpose(probes, PreflightPurpose.REFLECT_HEADER)
    [attacker] = by_purpose(probes, PreflightPurpose.ATTACKER)
    assert method.headers.combined("access-control-request-method") == "PROPFIND"
    assert "access-control-request-headers" not in method.headers
    assert header.headers.combined("access-control-request-method") == "GET"
    assert header.headers.combined("access-control-request-headers") == "x-cors-scanner-tok"
    assert attacker.headers.combined("access-control-request-method") == "GET"
    assert "access-control-request-headers" not in attacker.headers
    assert attacker.headers.get_all(PRIVATE_NETWORK_REQUEST[0]) == ("true",)
    assert by_purpose(probes, PreflightPurpose.REFLECTION) == []
    assert method.origin.value == header.origin.value == APP


def test_a_method_is_kept_as_the_front_end_sends_it() -> None:
    lower = plan("patch")
    [legit] = by_purpose(lower, PreflightPurpose.LEGITIMATE)
    assert legit.headers.combined("access-control-request-method") == "patch"
    [header] = by_purpose(lower, PreflightPurpose.REFLECT_HEADER)
    assert header.cors_request.method == "patch"
    # fetch() uppercases these six in any case.
    [legit] = by_purpose(plan("put"), PreflightPurpose.LEGITIMATE)
    assert legit.headers.combined("access-control-request-method") == "PUT"


def test_front_end_headers_are_named_in_the_preflight_and_sent_only_on_actual_requests() -> None:
    probes = plan("GET", front=FRONT)
    [legit] = by_purpose(probes, PreflightPurpose.LEGITIMATE)
    assert legit.headers.combined("access-control-request-headers") == "authorization,content-type"
    assert legit.cors_request.credentials
    for probe in probes:
        if probe.kind is ProbeKind.PREFLIGHT:
            assert "authorization" not in probe.headers
            assert "cookie" not in probe.headers
            assert SECRET not in str(probe.headers)
        else:
            assert probe.headers.get_all("authorization") == (SECRET,)
    # Attacker pages are judged without them (they cannot know the token).
    attacker = next(p for p in probes if p.kind is ProbeKind.SIMPLE and not p.origin.trusted)
    assert attacker.cors_request.headers == Headers()


def test_only_the_users_secrets_are_redacted_even_when_echoed() -> None:
    probes = plan("GET", front=FRONT)
    simple = next(p for p in probes if p.kind is ProbeKind.SIMPLE)
    assert ("Authorization", "[redacted]") in simple.public_headers.lines
    [attacker] = by_purpose(probes, PreflightPurpose.ATTACKER)
    # The scanner's own protocol line is never a secret.
    assert PRIVATE_NETWORK_REQUEST in attacker.public_headers.lines
    echoed = Observation(
        simple,
        status=200,
        headers=Headers((("X-Echo", f"you sent {SECRET}"), ("X-Token", "s3cr3t-t0ken"))),
    )
    assert echoed.public_headers.lines == (
        ("X-Echo", "you sent [redacted]"),
        ("X-Token", "[redacted]"),
    )


def test_the_endpoints_own_origin_gets_no_preflight() -> None:
    probes = plan("PUT", policy=Policy.build(allowed_origins=["https://api.acme.com", APP]))
    own = [p for p in probes if p.origin.value == "https://api.acme.com"]
    assert [p.kind for p in own] == [ProbeKind.SIMPLE]
    assert not own[0].cors_request.cross_origin
    assert by_purpose(probes, PreflightPurpose.LEGITIMATE)[0].origin.value == APP


def test_a_plan_rebased_onto_another_path_is_that_paths_plan() -> None:
    first = plan("GET", front=FRONT)
    other = URL.replace("/items", "/orders?x=1")
    assert replan(first, other, "tok") == plan("GET", front=FRONT, url=other)
