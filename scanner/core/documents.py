"""The JSON documents of core values: a policy, a finding with its evidence, one probe.

They are the parts of the ``cors-scanner.scan`` format (docs/scan-json.md) and the
form runs are stored in, so the report a run is read back as is the one it was
stored as: ``scanner.reports.json`` assembles them into the scan document, and
``scanner.db.runs`` stores them. A probe document never holds a secret value of
the front end's headers (``ProbeRequest.scrub``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scanner.core.catalogue import rule
from scanner.core.checks import ProbeResult
from scanner.core.findings import Evidence, Finding
from scanner.core.policy import Policy

JSON = dict[str, Any]


def policy_to_json(policy: Policy) -> JSON:
    return {
        "allowed_origins": [str(p) for p in policy.allowed_origins],
        "allow_credentials": policy.allow_credentials,
        "allowed_methods": list(policy.allowed_methods),
        "allowed_headers": list(policy.allowed_headers),
        "exposed_headers": list(policy.exposed_headers),
        "max_age": policy.max_age,
        "public": policy.public,
    }


def evidence_to_json(e: Evidence) -> JSON:
    return {
        "probe": e.probe_key,
        "origin": e.origin,
        "origin_kind": e.origin_kind,
        "request": {"method": e.method, "url": e.url, "headers": e.request_headers.as_list()},
        "response": {"status": e.status, "headers": e.response_headers.as_list()},
        "error": e.error,
        "verdict": e.verdict,
        **({"raw_response_lines": list(e.response_raw_lines)} if e.response_raw_lines else {}),
    }


def finding_to_json(f: Finding) -> JSON:
    r = rule(f.rule_id)
    return {
        "rule_id": f.rule_id,
        "severity": f.severity.value,
        "category": f.category.value,
        "title": f.title,
        "summary": f.summary,
        "fingerprint": f.fingerprint,
        "origin_class": f.origin_class,
        "credentialed": f.credentialed,
        "related": list(f.related),
        "description": r.description,
        "remediation": {
            "generic": r.remediation.generic,
            "express": r.remediation.express,
            "nginx": r.remediation.nginx,
            "apache": r.remediation.apache,
        },
        "cwe": r.cwe,
        "evidence": [evidence_to_json(e) for e in f.evidence],
    }


def probe_to_json(result: ProbeResult) -> JSON:
    """One probe as reports and storage show it: every text the target's answer went into
    (reason phrase, errors, verdicts) with the probe's secret header values redacted."""
    doc = _probe_doc(result)
    secrets = result.observation.request.secret_values
    return _scrubbed(doc, result.observation.request.scrub) if secrets else doc


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, scrub) for v in value]
    return value


def _probe_doc(result: ProbeResult) -> JSON:
    obs = result.observation
    req = obs.request
    verdict: JSON | None
    if result.preflight is not None:
        verdict = {"preflight_ok": result.preflight.ok, "reason": result.preflight.reason}
    elif result.verdict is not None and result.verdict_with_credentials is not None:
        plain, cred = result.verdict, result.verdict_with_credentials
        preflight = cred.preflight or plain.preflight
        verdict = {
            "readable": plain.readable,
            "readable_with_credentials": cred.readable,
            "preflight_needed": plain.preflight_needed or cred.preflight_needed,
            "preflight_ok": None if preflight is None else preflight.ok,
            "reason": plain.reason,
            "reason_with_credentials": cred.reason,
            "exposed_headers": list(
                cred.exposed_headers if cred.readable else plain.exposed_headers
            ),
        }
    else:
        verdict = None
    return {
        "key": req.key,
        "kind": req.kind.value,
        "purpose": req.purpose.value if req.purpose else None,
        "origin": req.origin.value,
        "origin_kind": req.origin.kind.value,
        "trusted": req.origin.trusted,
        "browser_sendable": req.origin.browser_sendable,
        "method": req.method,
        "url": req.url,
        "request_headers": req.public_headers.as_list(),
        "status": obs.status,
        "reason": obs.reason,
        "response_headers": obs.public_headers.as_list(),
        "error": obs.error.value if obs.error else None,
        "error_detail": obs.error_detail,
        "elapsed_ms": round(obs.elapsed_ms, 1),
        "attempts": obs.attempts,
        "verdict": verdict,
        # Every line of the head as received, when the browser's reading of it
        # was lenient (scanner.core.response_head); else empty.
        "raw_response_lines": list(obs.public_raw_lines),
    }


__all__ = ["JSON", "evidence_to_json", "finding_to_json", "policy_to_json", "probe_to_json"]
