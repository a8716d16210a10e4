"""The rules, on exchanges computed by small pure "servers" (request → status and headers).

These pin down the judgement logic (root causes reported once, severities,
what is not a finding); tests/integration runs the same rules over real sockets.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from scanner.core.checks import Assessment, assess
from scanner.core.headers import Headers
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import Endpoint, ProbeKind, ProbeRequest, plan_probes
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.core.variants import VariantKind, probe_origins
from scanner.hostnames import default_public_suffixes

Server = Callable[[ProbeRequest], tuple[int, list[tuple[str, str]]]]
URL = "https://api.acme.com/v1/me"
APP = "https://app.acme.com"


def run(server: Server, policy: Policy, *, method: str = "GET", token: str = "tok1") -> Assessment:
    endpoint = Endpoint(URL, method)
    origins = probe_origins(URL, policy, suffixes=default_public_suffixes(), token=token)
    plan = plan_probes(endpoint, policy, origins, token=token)
    observations = []
    for request in plan:
        status, headers = server(request)
        observations.append(Observation(request, status=status, headers=Headers.of(headers)))
    return assess(endpoint, policy, observations)


def origin_of(request: ProbeRequest) -> str:
    return request.headers.combined("origin") or ""


def rules(a: Assessment) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in a.findings}


def reflector(credentials: bool) -> Server:
    def serve(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        headers = [("Access-Control-Allow-Origin", origin_of(request)), ("Vary", "Origin")]
        if credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if request.kind is ProbeKind.PREFLIGHT:
            headers.append(("Access-Control-Allow-Methods", "GET, POST, PUT"))
            return 204, headers
        return 200, headers

    return serve


def allowlist(
    allowed: set[str] | Callable[[str], bool],
    *,
    credentials: bool = True,
    vary: bool = True,
    methods: str = "GET, POST, PUT",
    preflight_status: int = 204,
    on_errors: bool = True,
    extra_preflight: list[tuple[str, str]] | None = None,
    echo: Callable[[str], str] = lambda o: o,
) -> Server:
    check = allowed if callable(allowed) else allowed.__contains__

    def serve(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        origin = origin_of(request)
        status = 200
        if request.kind is ProbeKind.PREFLIGHT:
            status = preflight_status
        elif request.kind is ProbeKind.ERROR_PATH:
            status = 404
        headers: list[tuple[str, str]] = [("Vary", "Origin")] if vary else []
        if check(origin) and (on_errors or status < 400):
            headers.append(("Access-Control-Allow-Origin", echo(origin)))
            if credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
            if request.kind is ProbeKind.PREFLIGHT:
                headers.append(("Access-Control-Allow-Methods", methods))
                headers.append(("Access-Control-Allow-Headers", "content-type, authorization"))
                headers.extend(extra_preflight or [])
        return status, headers

    return serve


APP_POLICY = Policy.build(allowed_origins=[APP], allow_credentials=True)


def test_reflecting_any_origin_with_credentials_is_one_critical_finding() -> None:
    a = run(reflector(credentials=True), APP_POLICY)
    exposure = [f for f in a.findings if f.category.value == "exposure"]
    assert [f.rule_id for f in exposure] == ["reflect_any_origin_credentials"]
    finding = exposure[0]
    assert finding.severity is Severity.CRITICAL
    assert finding.credentialed
    # Every other class is evidence of the same root cause, not a finding of its own.
    assert {"null", "prefix_match", "suffix_match", "any_subdomain"} <= set(finding.related)
    assert finding.evidence[0].origin_kind == "arbitrary_origin"
    assert "attacker.example" in finding.evidence[0].origin


def test_reflection_without_credentials_is_high_unless_the_endpoint_is_public() -> None:
    assert rules(run(reflector(credentials=False), Policy()))["reflect_any_origin"] is Severity.HIGH
    public = Policy.build(public=True)
    assert rules(run(reflector(credentials=False), public))["reflect_any_origin"] is Severity.LOW


def test_exact_allowlist_with_vary_and_preflight_is_clean() -> None:
    a = run(allowlist({APP}), APP_POLICY)
    assert a.findings == ()
    assert a.reachable


def test_suffix_match_covers_any_subdomain() -> None:
    a = run(allowlist(lambda o: o.endswith("acme.com")), APP_POLICY)
    found = rules(a)
    assert found.get("suffix_match") is Severity.CRITICAL
    assert "any_subdomain_trusted" not in found
    assert "reflect_any_origin_credentials" not in found
    suffix = next(f for f in a.findings if f.rule_id == "suffix_match")
    assert "any_subdomain" in suffix.related


def test_unescaped_dot_regex_is_found_separately_from_subdomains() -> None:
    pattern = re.compile(r"^https://app.acme.com$")
    a = run(allowlist(lambda o: bool(pattern.match(o))), APP_POLICY)
    assert set(rules(a)) == {"unescaped_dot"}


def test_prefix_match_covers_special_characters() -> None:
    a = run(allowlist(lambda o: o.startswith(APP)), APP_POLICY)
    found = rules(a)
    assert "prefix_match" in found
    assert "special_chars_bypass" not in found


def test_null_origin_trusted_with_credentials_is_critical() -> None:
    a = run(allowlist({APP, "null"}), APP_POLICY)
    assert rules(a) == {"null_origin_trusted": Severity.CRITICAL}


def test_http_downgrade_is_a_conditional_exposure() -> None:
    a = run(allowlist({APP, "http://app.acme.com"}), APP_POLICY)
    assert rules(a) == {"http_origin_trusted": Severity.HIGH}


def test_missing_vary_origin() -> None:
    a = run(allowlist({APP}, vary=False), APP_POLICY)
    assert set(rules(a)) == {"missing_vary_origin"}


def test_wildcard_with_credentials_and_undeclared_wildcard() -> None:
    def star(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        return 200, [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "true"),
        ]

    found = rules(run(star, Policy()))
    assert found["wildcard_with_credentials"] is Severity.LOW
    assert found["wildcard_public"] is Severity.INFO
    # A declared policy that is not public makes '*' a real leak.
    assert rules(run(star, APP_POLICY))["wildcard_public"] is Severity.HIGH
    # ... and a public one accepts it.
    public = Policy.build(public=True)
    assert "wildcard_public" not in rules(run(star, public))


def test_trailing_slash_blocks_the_legitimate_origin() -> None:
    a = run(allowlist({APP}, echo=lambda o: o + "/"), APP_POLICY)
    found = rules(a)
    assert found["legit_origin_blocked"] is Severity.HIGH
    assert "invalid_acao" in found
    blocked = next(f for f in a.findings if f.rule_id == "legit_origin_blocked")
    assert "not equal to the supplied origin" in blocked.summary


def test_preflight_404_for_a_put_endpoint_is_reported_as_the_root_cause() -> None:
    a = run(allowlist({APP}, preflight_status=404), APP_POLICY, method="PUT")
    found = rules(a)
    assert "preflight_not_handled" in found
    assert "legit_origin_blocked" not in found


def test_cors_headers_missing_on_errors() -> None:
    a = run(allowlist({APP}, on_errors=False), APP_POLICY)
    assert set(rules(a)) == {"cors_missing_on_error"}
    finding = a.findings[0]
    assert finding.evidence[0].status == 404


def test_error_path_answering_200_is_unchecked_not_clean() -> None:
    def ok(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        status, headers = allowlist({APP})(request)
        return (200 if request.kind is ProbeKind.ERROR_PATH else status), headers

    a = run(ok, APP_POLICY)
    assert any(u.startswith("cors_missing_on_error: not checked") for u in a.unchecked)


def test_preflight_reflection_max_age_and_private_network() -> None:
    def serve(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        status, headers = allowlist({APP})(request)
        if request.kind is ProbeKind.PREFLIGHT:
            headers = [h for h in headers if h[0] != "Access-Control-Allow-Methods"]
            acrm = request.headers.combined("access-control-request-method") or ""
            acrh = request.headers.combined("access-control-request-headers") or ""
            headers += [
                ("Access-Control-Allow-Methods", acrm),
                ("Access-Control-Allow-Headers", acrh),
                ("Access-Control-Max-Age", "86400"),
                ("Access-Control-Allow-Private-Network", "true"),
            ]
        return status, headers

    found = rules(run(serve, APP_POLICY))
    assert {
        "preflight_reflects_any_method",
        "preflight_reflects_any_header",
        "excessive_max_age",
        "private_network_any_origin",
    } <= set(found)
    assert found["private_network_any_origin"] is Severity.HIGH


def test_policy_max_age_is_the_threshold() -> None:
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True, max_age=600)
    server = allowlist({APP}, extra_preflight=[("Access-Control-Max-Age", "3600")])
    assert "excessive_max_age" in rules(run(server, policy, method="PUT"))
    assert "excessive_max_age" not in rules(run(server, APP_POLICY, method="PUT"))


def test_unreachable_endpoint_has_no_findings_and_says_so() -> None:
    endpoint = Endpoint(URL)
    origins = probe_origins(URL, APP_POLICY, suffixes=default_public_suffixes(), token="t")
    plan = plan_probes(endpoint, APP_POLICY, origins, token="t")
    observations = [Observation(r, error=ProbeError.CONNECT, error_detail="refused") for r in plan]
    a = assess(endpoint, APP_POLICY, observations)
    assert a.findings == ()
    assert not a.reachable
    assert len(a.errors) == len(plan)


def test_fingerprints_do_not_depend_on_the_random_token() -> None:
    first = run(reflector(credentials=True), APP_POLICY, token="aaaa")
    second = run(reflector(credentials=True), APP_POLICY, token="bbbb")
    assert [f.fingerprint for f in first.findings] == [f.fingerprint for f in second.findings]
    assert all(f.fingerprint.startswith("fp1:") for f in first.findings)


@pytest.mark.parametrize("credentials", [False, True])
def test_verdicts_cover_both_credentials_modes_from_one_exchange(credentials: bool) -> None:
    a = run(reflector(credentials=credentials), APP_POLICY)
    simple = [p for p in a.probes if p.observation.request.kind is ProbeKind.SIMPLE]
    assert simple
    for p in simple:
        assert p.verdict is not None
        assert p.verdict_with_credentials is not None
        origin = p.observation.request.origin
        if origin.kind is VariantKind.SELF:
            # Same-origin is not CORS: readable in both modes, whatever the headers.
            assert p.verdict.readable
            assert p.verdict_with_credentials.readable
        elif origin.browser_sendable:
            assert p.verdict.readable
            assert p.verdict_with_credentials.readable is credentials


def test_vary_only_on_granted_responses_is_the_weaker_defect() -> None:
    def vary_when_granted(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        status, headers = allowlist({APP})(request)
        names = {n for n, _ in headers}
        if "Access-Control-Allow-Origin" not in names:
            headers = [h for h in headers if h[0] != "Vary"]
        return status, headers

    weaker = run(vary_when_granted, APP_POLICY)
    none = run(allowlist({APP}, vary=False), APP_POLICY)
    assert rules(weaker)["missing_vary_origin"] is Severity.LOW
    assert rules(none)["missing_vary_origin"] is Severity.MEDIUM
    finding = next(f for f in weaker.findings if f.rule_id == "missing_vary_origin")
    assert "only with the Access-Control-Allow-Origin the server grants" in finding.summary
