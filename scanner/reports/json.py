"""The versioned JSON document of a scan (`scan --format json`), documented in docs/scan-json.md.

Stable contract: fields are only ever added within a version; renaming or
removing one bumps ``version``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

import scanner
from scanner.core.catalogue import rule
from scanner.core.checks import Assessment, ProbeResult
from scanner.core.findings import Evidence, Finding
from scanner.core.policy import Policy
from scanner.core.severity import Severity

FORMAT = "cors-scanner.scan"
VERSION = 1

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


def assessment_to_json(a: Assessment, *, probes: bool = True) -> JSON:
    doc: JSON = {
        "method": a.endpoint.method.upper(),
        "url": a.endpoint.url,
        "name": a.endpoint.name,
        "policy": policy_to_json(a.policy),
        "reachable": a.reachable,
        "probe_count": a.probe_count,
        "probe_errors": len(a.errors),
        "findings": [finding_to_json(f) for f in a.findings],
        "unchecked": list(a.unchecked),
        "not_sent": a.not_sent,
    }
    if probes:
        doc["probes"] = [probe_to_json(p) for p in a.probes]
    return doc


def summary(assessments: Sequence[Assessment], fail_on: Severity | None) -> JSON:
    severities: Counter[str] = Counter(f.severity.value for a in assessments for f in a.findings)
    failing = fail_on is not None and any(
        f.severity >= fail_on for a in assessments for f in a.findings
    )
    return {
        "endpoints": len(assessments),
        "reachable": sum(1 for a in assessments if a.reachable),
        "unreachable": sum(1 for a in assessments if not a.reachable),
        "probes": sum(a.probe_count for a in assessments),
        "probe_errors": sum(len(a.errors) for a in assessments),
        "findings": {s.value: severities.get(s.value, 0) for s in sorted(Severity, reverse=True)},
        "fail_on": fail_on.value if fail_on else None,
        "failed": failing,
    }


def scan_document(
    assessments: Iterable[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> JSON:
    items = list(assessments)
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": {"name": "cors-scanner", "version": scanner.__version__},
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "summary": summary(items, fail_on),
        "endpoints": [assessment_to_json(a) for a in items],
    }


class ScanDocumentWriter:
    """Writes the scan document incrementally: each endpoint as soon as it is judged.

    Memory stays flat however many endpoints a scan has. The document is the
    same as :func:`scan_document`'s except for key order (``endpoints`` before
    ``finished_at`` and ``summary``) and endpoints in the order they finished.
    """

    def __init__(self, stream: TextIO, *, started_at: datetime) -> None:
        self._stream = stream
        self._first = True
        head = {
            "format": FORMAT,
            "version": VERSION,
            "tool": {"name": "cors-scanner", "version": scanner.__version__},
            "started_at": started_at.isoformat(),
        }
        stream.write(json.dumps(head, indent=2)[:-2] + ',\n  "endpoints": [')

    def add(self, assessment: Assessment) -> None:
        body = json.dumps(assessment_to_json(assessment), indent=2)
        self._stream.write(("\n" if self._first else ",\n") + _indent(body, 4))
        self._first = False

    def finish(
        self, assessments: Sequence[Assessment], *, finished_at: datetime, fail_on: Severity | None
    ) -> None:
        tail = {"finished_at": finished_at.isoformat(), "summary": summary(assessments, fail_on)}
        body = json.dumps(tail, indent=2)[1:]  # drop the opening brace
        self._stream.write(("\n  ]," if not self._first else "],") + body + "\n")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())
