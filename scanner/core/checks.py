"""From observations to findings: the browser's verdict per probe, then the rules.

``assess`` is the whole pipeline for one endpoint after the network step:
verdicts for both credentials modes from each exchange (counting the
preflight each mode needs), then every rule of the catalogue, reporting each
root cause once with every proving exchange as evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from scanner.core.browser import (
    Check,
    Response,
    Verdict,
    evaluate_modes,
    needs_preflight,
    normalize_method,
    preflight_check,
)
from scanner.core.catalogue import rule
from scanner.core.findings import Category, Evidence, Finding
from scanner.core.headers import Headers
from scanner.core.observation import NOT_SENT_ERRORS, Observation
from scanner.core.origin import Origin
from scanner.core.plan import Endpoint, PreflightPurpose, ProbeKind
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.core.variants import VariantKind
from scanner.errors import InvalidOrigin

# Chromium honours at most 7200 s of Access-Control-Max-Age: a policy that says
# nothing about max-age is held to that.
DEFAULT_MAX_AGE = 7200
MAX_EVIDENCE = 8  # exchanges kept per finding; the rest are counted in the summary
# How the line that says probes were not sent starts, in ``Assessment.unchecked``.
NOT_SENT_PREFIX = "not sent:"
_LENIENT_NOTE = " (header block read leniently, as Chromium reads it: see the raw lines)"
_METHOD_PURPOSES = (PreflightPurpose.REFLECT_METHOD, PreflightPurpose.REFLECTION)
_HEADER_PURPOSES = (PreflightPurpose.REFLECT_HEADER, PreflightPurpose.REFLECTION)

# Which rule an untrusted origin class proves, and whether exploiting it needs
# a precondition (a taken-over subdomain, a network position, local code).
_EXPOSURE_RULES: dict[VariantKind, tuple[str, bool]] = {
    VariantKind.ARBITRARY: ("reflect_any_origin", False),
    VariantKind.CUSTOM: ("reflect_any_origin", False),
    VariantKind.NULL: ("null_origin_trusted", False),
    VariantKind.PREFIX: ("prefix_match", False),
    VariantKind.SUFFIX: ("suffix_match", False),
    VariantKind.UNESCAPED_DOT: ("unescaped_dot", False),
    VariantKind.SPECIAL_CHARS: ("special_chars_bypass", False),
    VariantKind.THIRD_PARTY: ("third_party_origin_trusted", False),
    VariantKind.SUBDOMAIN: ("any_subdomain_trusted", True),
    VariantKind.HTTP_DOWNGRADE: ("http_origin_trusted", True),
    VariantKind.LOCALHOST: ("localhost_trusted", True),
}

# A broader defect covers narrower ones: report the root cause once.
_COVERS: dict[VariantKind, tuple[VariantKind, ...]] = {
    VariantKind.SUFFIX: (VariantKind.SUBDOMAIN,),
    VariantKind.PREFIX: (VariantKind.SPECIAL_CHARS,),
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One exchange and what a browser makes of it.

    For actual requests, ``verdict`` (credentials mode "same-origin"/"omit") and
    ``verdict_with_credentials`` ("include") each count the preflight that mode
    needs. For preflights, ``preflight`` is the preflight check alone.
    Verdicts are None when the probe got no response.
    """

    observation: Observation
    verdict: Verdict | None = None
    verdict_with_credentials: Verdict | None = None
    preflight: Check | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the scanner concluded about one endpoint."""

    endpoint: Endpoint
    policy: Policy
    probes: tuple[ProbeResult, ...]
    findings: tuple[Finding, ...]
    unchecked: tuple[str, ...]
    # How many probes were sent; differs from len(probes) only after slim().
    sent: int = -1

    @property
    def probe_count(self) -> int:
        return self.sent if self.sent >= 0 else len(self.probes)

    @property
    def reachable(self) -> bool:
        return any(p.observation.ok for p in self.probes)

    def slim(self) -> Assessment:
        """A copy that keeps findings and failures but drops the successful exchanges.

        Long scans keep these for the summary, the exit code and the reports
        that need findings only, so memory does not grow with every probe's
        headers. ``reachable``, ``errors`` and ``probe_count`` are unchanged.
        """
        kept = [p for p in self.probes if not p.observation.ok]
        first_ok = next((p for p in self.probes if p.observation.ok), None)
        if first_ok is not None:
            kept.insert(0, first_ok)
        return replace(self, probes=tuple(kept), sent=self.probe_count)

    @property
    def errors(self) -> tuple[Observation, ...]:
        return tuple(p.observation for p in self.probes if not p.observation.ok)

    @property
    def not_sent(self) -> str | None:
        """The one line saying which probes were never sent and why (an unresponsive
        host, a used-up time budget), or None when every probe was sent."""
        return next((u for u in self.unchecked if u.startswith(NOT_SENT_PREFIX)), None)


def assess(endpoint: Endpoint, policy: Policy, observations: Sequence[Observation]) -> Assessment:
    """Verdicts and findings for one endpoint's observations."""
    preflights = {
        o.request.origin.value: o
        for o in observations
        if o.request.kind is ProbeKind.PREFLIGHT
        and o.request.purpose in (PreflightPurpose.LEGITIMATE, PreflightPurpose.ORIGIN)
    }
    results = [_result(o, preflights) for o in observations]
    ctx = _Context(endpoint, policy, results)
    ctx.not_sent([o for o in observations if o.error in NOT_SENT_ERRORS], len(observations))
    findings = [
        *ctx.exposure(),
        *ctx.wildcard(),
        *ctx.invalid_acao(),
        *ctx.legit_blocked(),
        *ctx.preflight_not_handled(),
        *ctx.error_path(),
        *ctx.vary(),
        *ctx.preflight_reflection(),
        *ctx.max_age(),
        *ctx.private_network(),
    ]
    findings.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.origin_class))
    return Assessment(endpoint, policy, tuple(results), tuple(findings), tuple(ctx.unchecked))


def _result(obs: Observation, preflights: dict[str, Observation]) -> ProbeResult:
    if not obs.ok or obs.status is None:
        return ProbeResult(obs)
    response = Response(obs.status, obs.headers)
    request = obs.request
    if request.kind is ProbeKind.PREFLIGHT:
        return ProbeResult(obs, preflight=preflight_check(request.cors_request, response))
    # The request a page at this origin makes (for the error path: a plain GET).
    page = request.cors_request
    pre_response: Response | None = None
    if needs_preflight(page):
        pre = preflights.get(request.origin.value)
        if pre is not None and pre.status is not None:
            pre_response = Response(pre.status, pre.headers)
    plain, credentialed = evaluate_modes(page, actual=response, preflight=pre_response)
    return ProbeResult(obs, plain, credentialed)


def _evidence(result: ProbeResult, verdict: str = "") -> Evidence:
    obs = result.observation
    req = obs.request
    if not verdict:
        verdict = _describe(result)
    return Evidence(
        probe_key=req.key,
        origin=req.origin.value,
        origin_kind=req.origin.kind.value,
        method=req.method,
        url=req.url,
        request_headers=req.public_headers,
        status=obs.status,
        response_headers=obs.public_headers,
        error=obs.error.value if obs.error else None,
        verdict=req.scrub(verdict + (_LENIENT_NOTE if obs.raw_lines else "")),
        response_raw_lines=obs.public_raw_lines,
    )


def _describe(result: ProbeResult) -> str:
    if result.preflight is not None:
        return (
            "preflight passes"
            if result.preflight.ok
            else f"preflight fails: {result.preflight.reason}"
        )
    if result.verdict_with_credentials and result.verdict_with_credentials.readable:
        return "readable with credentials"
    if result.verdict and result.verdict.readable:
        return "readable without credentials"
    if result.verdict and result.verdict.reason:
        return f"blocked: {result.verdict.reason}"
    if result.observation.error is not None:
        return f"no response: {result.observation.error.value}"
    return "no response"


def _acao(result: ProbeResult) -> str | None:
    return result.observation.headers.combined("access-control-allow-origin")


def _tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


class _Context:
    """The rules, sharing one endpoint's results. Each method yields findings."""

    def not_sent(self, skipped: Sequence[Observation], total: int) -> None:
        """One line for the probes never sent (unresponsive host, used-up budget)."""
        if not skipped:
            return
        first = skipped[0]
        detail = (first.error_detail or "").removeprefix(NOT_SENT_PREFIX).strip()
        kind = first.error.value if first.error else "error"
        self.unchecked.insert(
            0, f"{NOT_SENT_PREFIX} {len(skipped)} of {total} probes ({kind}): {detail}"
        )

    def __init__(self, endpoint: Endpoint, policy: Policy, results: Sequence[ProbeResult]) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.results = results
        self.unchecked: list[str] = []
        self.simple = [
            r
            for r in results
            if r.observation.request.kind is ProbeKind.SIMPLE and r.observation.ok
        ]

    def finding(
        self,
        rule_id: str,
        origin_class: str,
        summary: str,
        evidence: Iterable[Evidence],
        *,
        severity: Severity | None = None,
        credentialed: bool = False,
        related: tuple[str, ...] = (),
    ) -> Finding:
        r = rule(rule_id)
        items = tuple(evidence)
        if len(items) > MAX_EVIDENCE:
            summary += f" Evidence: the first {MAX_EVIDENCE} of {len(items)} exchanges."
            items = items[:MAX_EVIDENCE]
        return Finding(
            rule_id=rule_id,
            severity=severity or r.severity,
            category=r.category,
            title=r.title,
            endpoint_method=self.endpoint.method,
            endpoint_url=self.endpoint.url,
            origin_class=origin_class,
            summary=summary,
            evidence=items,
            credentialed=credentialed,
            related=related,
        )

    # -- untrusted origins that can read -----------------------------------

    def _exposed(self) -> dict[VariantKind, list[ProbeResult]]:
        """Untrusted, browser-sendable origins the server explicitly allowed (not via '*')."""
        hits: dict[VariantKind, list[ProbeResult]] = {}
        for r in self.simple:
            origin = r.observation.request.origin
            if origin.trusted or not origin.browser_sendable or origin.kind not in _EXPOSURE_RULES:
                continue
            if _acao(r) != origin.value:
                continue
            if (r.verdict and r.verdict.readable) or (
                r.verdict_with_credentials and r.verdict_with_credentials.readable
            ):
                hits.setdefault(origin.kind, []).append(r)
        return hits

    def exposure(self) -> list[Finding]:
        hits = self._exposed()
        if not hits:
            return []
        findings = []
        public = self.policy.public

        def severity_for(credentialed: bool, conditional: bool) -> Severity:
            if credentialed:
                return Severity.HIGH if conditional else Severity.CRITICAL
            if public:
                return Severity.LOW
            return Severity.MEDIUM if conditional else Severity.HIGH

        def cred(results: list[ProbeResult]) -> bool:
            return any(
                r.verdict_with_credentials and r.verdict_with_credentials.readable for r in results
            )

        if VariantKind.ARBITRARY in hits:
            # One root cause: the server trusts any origin. Every other class is
            # just more proof of it.
            everything = [r for kind in hits for r in hits[kind]]
            everything.sort(
                key=lambda r: r.observation.request.origin.kind != VariantKind.ARBITRARY
            )
            credentialed = cred(everything)
            rule_id = "reflect_any_origin_credentials" if credentialed else "reflect_any_origin"
            related = tuple(sorted(k.value for k in hits if k is not VariantKind.ARBITRARY))
            summary = (
                f"The server echoes any Origin: {len(everything)} untrusted origins tried were "
                "allowed"
                + (", with Access-Control-Allow-Credentials: true." if credentialed else ".")
            )
            severity = (
                Severity.CRITICAL if credentialed else (Severity.LOW if public else Severity.HIGH)
            )
            return [
                self.finding(
                    rule_id,
                    VariantKind.ARBITRARY.value,
                    summary,
                    (_evidence(r) for r in everything),
                    severity=severity,
                    credentialed=credentialed,
                    related=related,
                )
            ]
        covered = {c for k, cs in _COVERS.items() if k in hits for c in cs}
        absorbed = _absorb_suffix_explained(hits)
        for kind, results in hits.items():
            if kind in covered:
                continue
            rule_id, conditional = _EXPOSURE_RULES[kind]
            extra = [r for c in _COVERS.get(kind, ()) for r in hits.get(c, [])]
            related_kinds = {c.value for c in _COVERS.get(kind, ()) if c in hits}
            if kind is VariantKind.SUFFIX and absorbed:
                extra += absorbed
                related_kinds.add(VariantKind.UNESCAPED_DOT.value)
            credentialed = cred(results + extra)
            origins = ", ".join(r.observation.request.origin.value for r in results[:3])
            summary = f"Untrusted origin(s) {origins} can read responses" + (
                " with the user's credentials." if credentialed else " (without credentials)."
            )
            findings.append(
                self.finding(
                    rule_id,
                    kind.value,
                    summary,
                    (_evidence(r) for r in results + extra),
                    severity=severity_for(credentialed, conditional),
                    credentialed=credentialed,
                    related=tuple(sorted(related_kinds)),
                )
            )
        return findings

    # -- '*' ----------------------------------------------------------------

    def wildcard(self) -> list[Finding]:
        stars = [r for r in self.simple if _acao(r) == "*"]
        if not stars:
            return []
        findings = []
        with_creds = [
            r
            for r in stars
            if r.observation.headers.combined("access-control-allow-credentials") == "true"
        ]
        if with_creds:
            findings.append(
                self.finding(
                    "wildcard_with_credentials",
                    "wildcard",
                    "Access-Control-Allow-Origin: * is sent with Access-Control-Allow-Credentials: "
                    "true; browsers refuse it for credentialed requests.",
                    (_evidence(r) for r in with_creds),
                )
            )
        if not self.policy.public:
            declared = self.policy.declared
            findings.append(
                self.finding(
                    "wildcard_public",
                    "wildcard",
                    "Every origin can read responses to requests without credentials"
                    + (
                        ", but the policy does not declare this endpoint public."
                        if declared
                        else "; declare the endpoint public in its policy if that is intended."
                    ),
                    (_evidence(r) for r in stars[:1]),
                    severity=Severity.HIGH if declared else Severity.INFO,
                )
            )
        return findings

    # -- malformed ACAO -----------------------------------------------------

    def invalid_acao(self) -> list[Finding]:
        bad: list[tuple[ProbeResult, str]] = []
        for r in self.results:
            obs = r.observation
            if not obs.ok:
                continue
            lines = obs.headers.get_all("access-control-allow-origin")
            if not lines:
                continue
            sent = obs.request.origin.value
            if len(lines) > 1:
                bad.append((r, f"{len(lines)} Access-Control-Allow-Origin headers"))
                continue
            value = lines[0].strip(" \t")
            if value in ("*", "null", sent):
                continue
            problem = _acao_problem(value)
            if problem:
                bad.append((r, problem))
        if not bad:
            return []
        problems = sorted({p for _, p in bad})
        return [
            self.finding(
                "invalid_acao",
                "acao",
                f"Access-Control-Allow-Origin is not a valid value ({'; '.join(problems)}): "
                "browsers block every origin.",
                (_evidence(r, p) for r, p in bad),
            )
        ]

    # -- legitimate front ends ---------------------------------------------

    def _legit(self, kind: ProbeKind) -> list[ProbeResult]:
        return [
            r
            for r in self.results
            if r.observation.request.kind is kind
            and r.observation.request.origin.trusted
            and r.observation.request.origin.kind is VariantKind.ALLOWED
        ]

    def _needed(self, r: ProbeResult) -> Verdict | None:
        return r.verdict_with_credentials if self.policy.allow_credentials else r.verdict

    def legit_blocked(self) -> list[Finding]:
        if not self.policy.allowed_origins:
            self.unchecked.append(
                "legit_origin_blocked: not checked: the policy names no allowed origin"
            )
            return []
        blocked = []
        for r in self._legit(ProbeKind.SIMPLE):
            verdict = self._needed(r)
            if verdict is None or verdict.readable:
                continue
            if verdict.preflight is not None and not verdict.preflight.ok:
                continue  # the preflight is the root cause: preflight_not_handled says it
            blocked.append(r)
        if not blocked:
            return []
        mode = "with credentials" if self.policy.allow_credentials else "without credentials"
        first = self._needed(blocked[0])
        reason = first.reason if first else None
        return [
            self.finding(
                "legit_origin_blocked",
                VariantKind.ALLOWED.value,
                f"Allowed origin(s) {', '.join(r.observation.request.origin.value for r in blocked[:3])} "
                f"cannot read the response {mode}: {reason}",
                (_evidence(r) for r in blocked),
            )
        ]

    def preflight_not_handled(self) -> list[Finding]:
        legit = [
            r for r in self.results if r.observation.request.purpose is PreflightPurpose.LEGITIMATE
        ]
        if not legit:
            if self.policy.allowed_origins:
                self.unchecked.append(
                    "preflight_not_handled: not applicable: legitimate requests to this endpoint "
                    "need no preflight (safelisted method, no custom headers in the policy)"
                )
            return []
        failed = [r for r in legit if r.preflight is not None and not r.preflight.ok]
        broken = [r for r in legit if not r.observation.ok]
        if not failed:
            return []
        reason = failed[0].preflight.reason if failed[0].preflight else ""
        summary = (
            f"The preflight for {normalize_method(self.endpoint.method)} from "
            f"{failed[0].observation.request.origin.value} fails: {reason}"
        )
        if broken:
            summary += f" ({len(broken)} preflight probes got no response)"
        return [
            self.finding(
                "preflight_not_handled", "preflight", summary, (_evidence(r) for r in failed)
            )
        ]

    def error_path(self) -> list[Finding]:
        errors = [r for r in self.results if r.observation.request.kind is ProbeKind.ERROR_PATH]
        out = []
        for r in errors:
            obs = r.observation
            if not obs.ok or obs.status is None:
                self.unchecked.append(
                    "cors_missing_on_error: not checked: the error-path probe failed"
                )
                continue
            if obs.status < 400:
                self.unchecked.append(
                    f"cors_missing_on_error: not checked: the error-path probe {obs.request.url} "
                    f"answered {obs.status}, not an error"
                )
                continue
            origin = obs.request.origin.value
            normal = next(
                (s for s in self.simple if s.observation.request.origin.value == origin), None
            )
            if normal is None or normal.verdict is None or not normal.verdict.readable:
                continue  # the origin cannot read the normal path either; nothing to compare
            if r.verdict is not None and r.verdict.readable:
                continue
            out.append(
                self.finding(
                    "cors_missing_on_error",
                    "error_response",
                    f"A {obs.status} response to {origin} carries no usable CORS headers "
                    f"({r.verdict.reason if r.verdict else 'blocked'}), while the normal "
                    "response does.",
                    [_evidence(r), _evidence(normal)],
                )
            )
        return out

    # -- caching ------------------------------------------------------------

    def vary(self) -> list[Finding]:
        values = {_acao(r) for r in self.simple}
        specific = [r for r in self.simple if (_acao(r) or "*") not in ("*",)]
        if len(values) < 2 or not specific:
            return []  # ACAO does not depend on Origin
        missing = [r for r in self.simple if not _varies_on_origin(r.observation.headers)]
        if not missing:
            return []
        missing.sort(key=lambda r: _acao(r) is None)
        granted_without = [r for r in missing if _acao(r) is not None]
        if granted_without:
            summary = (
                "Access-Control-Allow-Origin depends on the request's Origin, but "
                f"{len(missing)} of {len(self.simple)} responses lack 'Vary: Origin'."
            )
            severity = None
        else:
            # cors-rules.md §6: Vary only with the ACAO it grants is the weaker,
            # deployment-dependent defect (a cached refusal breaks a front end).
            summary = (
                "'Vary: Origin' comes only with the Access-Control-Allow-Origin the server "
                f"grants: {len(missing)} of {len(self.simple)} responses (its refusals) lack it, "
                "so a shared cache can serve a refusal to an allowed front end."
            )
            severity = Severity.LOW
        return [
            self.finding(
                "missing_vary_origin",
                "vary",
                summary,
                (_evidence(r) for r in missing),
                severity=severity,
            )
        ]

    # -- preflight answers -----------------------------------------------------

    def preflight_reflection(self) -> list[Finding]:
        """Each preflight dimension from its own probe: a method, then a header."""
        out = []
        allowed_methods = {normalize_method(m) for m in self.policy.allowed_methods}
        for r in self.results:
            req = r.observation.request
            if req.purpose in _METHOD_PURPOSES and r.observation.ok:
                headers = r.observation.headers
                methods = _tokens(headers.combined("access-control-allow-methods"))
                asked = req.cors_request.method
                if asked not in allowed_methods and asked.lower() in (m.lower() for m in methods):
                    out.append(
                        self.finding(
                            "preflight_reflects_any_method",
                            "method",
                            f"The preflight allowed the unusual method {asked} it was asked for.",
                            [_evidence(r)],
                        )
                    )
            if req.purpose in _HEADER_PURPOSES:
                finding = self._header_reflection(r)
                if finding is not None:
                    out.append(finding)
        return out

    def _header_reflection(self, r: ProbeResult) -> Finding | None:
        obs = r.observation
        req = obs.request
        probe_names = [n.lower() for n, _ in req.cors_request.headers]
        if not probe_names:
            return None
        asked = f"the preflight asking for a random header with {req.cors_request.method}"
        if not obs.ok:
            self.unchecked.append(
                f"preflight_reflects_any_header: not checked: {asked} got no response "
                f"({obs.error.value if obs.error else 'error'})"
            )
            return None
        headers = obs.headers
        allowed = [h.lower() for h in _tokens(headers.combined("access-control-allow-headers"))]
        if all(n in allowed for n in probe_names):
            return self.finding(
                "preflight_reflects_any_header",
                "header",
                f"The preflight allowed the random header {probe_names[0]} it was asked for.",
                [_evidence(r)],
            )
        if headers.combined("access-control-allow-origin") is None:
            # No CORS answer at all: the server refused the header (fine) or
            # answers no preflight for this method; this probe cannot tell.
            self.unchecked.append(
                f"preflight_reflects_any_header: not checked: {asked} got no CORS headers "
                f"(status {obs.status}): the server refused the header, or answers no "
                f"preflight for {req.cors_request.method}"
            )
        return None

    def max_age(self) -> list[Finding]:
        limit = self.policy.max_age if self.policy.max_age is not None else DEFAULT_MAX_AGE
        over = []
        for r in self.results:
            if r.observation.request.kind is not ProbeKind.PREFLIGHT or not r.observation.ok:
                continue
            value = r.observation.headers.combined("access-control-max-age")
            if value is not None and value.isdigit() and int(value) > limit:
                over.append((r, int(value)))
        if not over:
            return []
        worst = max(v for _, v in over)
        return [
            self.finding(
                "excessive_max_age",
                "max_age",
                f"Access-Control-Max-Age is {worst} s, above the maximum of {limit} s.",
                (_evidence(r) for r, _ in over),
            )
        ]

    def private_network(self) -> list[Finding]:
        hits = [
            r
            for r in self.results
            if r.observation.request.purpose is PreflightPurpose.ATTACKER
            and r.observation.ok
            and (
                r.observation.headers.combined("access-control-allow-private-network") or ""
            ).lower()
            == "true"
        ]
        if not hits:
            return []
        return [
            self.finding(
                "private_network_any_origin",
                "private_network",
                "The preflight from an untrusted origin that asked for private network access got "
                "'Access-Control-Allow-Private-Network: true'.",
                (_evidence(r) for r in hits),
            )
        ]


def _absorb_suffix_explained(hits: dict[VariantKind, list[ProbeResult]]) -> list[ProbeResult]:
    """Move the unescaped-dot hits a suffix hit explains out of ``hits``; return them.

    ``endswith("acme.com")`` also accepts ``appxacme.com``, the unescaped-dot
    variant of ``app.acme.com``: one defect, so the suffix finding carries it
    as evidence. An unescaped-dot hit is explained when it ends, without a dot
    boundary, with the same multi-label tail (``acme.com``, port included) as a
    suffix hit; a shared top-level domain alone (``app.acmexcom``) is not.
    """
    suffix = hits.get(VariantKind.SUFFIX)
    dotted = hits.get(VariantKind.UNESCAPED_DOT)
    if not suffix or not dotted:
        return []
    proven = [r.observation.request.origin.value for r in suffix]
    absorbed: list[ProbeResult] = []
    kept: list[ProbeResult] = []
    for r in dotted:
        value = r.observation.request.origin.value
        explained = any("." in _common_tail(value, p) for p in proven)
        (absorbed if explained else kept).append(r)
    if kept:
        hits[VariantKind.UNESCAPED_DOT] = kept
    else:
        del hits[VariantKind.UNESCAPED_DOT]
    return absorbed


def _common_tail(a: str, b: str) -> str:
    """The longest common suffix of two strings."""
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]


def _varies_on_origin(headers: Headers) -> bool:
    tokens = {t.lower() for t in _tokens(headers.combined("vary"))}
    return "origin" in tokens or "*" in tokens


def _acao_problem(value: str) -> str | None:
    """Why an ACAO value can never match a browser's origin, or None when it can."""
    if "," in value or " " in value:
        return f"a list of origins {value!r}"
    try:
        origin = Origin.parse(value)
    except InvalidOrigin:
        if value.endswith("/") and value.count("/") == 3:
            return f"a trailing slash in {value!r}"
        if "://" in value and "/" in value.split("://", 1)[1]:
            return f"a path in {value!r}"
        return f"not an origin: {value!r}"
    if origin.serialize() != value:
        return f"{value!r} is not how browsers write that origin ({origin.serialize()!r})"
    return None


__all__ = ["Assessment", "Category", "ProbeResult", "assess"]
