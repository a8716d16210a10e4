"""SARIF 2.1.0 for a scan (`scan --format sarif`): code-scanning dashboards, DefectDojo, viewers.

One run per scan. ``tool.driver.rules`` is the whole check catalogue (so a
consumer can show what was checked, not only what fired), results point at
the endpoint URL, and ``partialFingerprints`` carry our stable fingerprint so
consumers track a finding across runs. The mapping is documented in
docs/ci.md; the document validates against the OASIS 2.1.0 schema
(tests/reports/sarif-schema-2.1.0.json).

Evidence never includes request headers other than Origin: they may hold the
credentials passed with ``--header``, and SARIF files get uploaded widely.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import scanner
from scanner.core.catalogue import CATALOGUE, Rule
from scanner.core.checks import Assessment
from scanner.core.findings import Evidence, Finding
from scanner.core.severity import Severity

SARIF_VERSION = "2.1.0"
# The URI most consumers (GitHub, VS Code's viewer) recognise for 2.1.0.
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "cors-scanner"
# The project's home, as the prober's User-Agent names it (scanner.cli.options).
INFORMATION_URI = scanner.PROJECT_URL
FINGERPRINT_KEY = "corsScannerFingerprint/v1"
# GitHub matches alerts across runs by this key; our fingerprint is stabler
# than a hash of a "line" in a URL, so it stands in for it.
GITHUB_FINGERPRINT_KEY = "primaryLocationLineHash"
AUTOMATION_CATEGORY = "cors-scanner"

NOTIFICATION_UNREACHABLE = "endpoint_unreachable"
NOTIFICATION_PROBE_ERRORS = "probe_errors"
_NOTIFICATIONS = (NOTIFICATION_UNREACHABLE, NOTIFICATION_PROBE_ERRORS)  # driver.notifications order

# Characters RFC 3986 allows unescaped in a URI (plus '%' of existing escapes).
_URI_SAFE = "-._~:/?#[]@!$&'()*+,;=%"

JSON = dict[str, Any]

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def sarif_level(severity: Severity) -> str:
    """SARIF ``level``: critical/high are errors, medium a warning, low/info notes."""
    return _LEVEL[severity]


def render_sarif(
    assessments: Sequence[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> str:
    """The SARIF 2.1.0 log of one scan, as JSON text (ASCII, newline-terminated).

    ``started_at``/``finished_at`` should be timezone-aware (naive values are
    taken as UTC); they are written in UTC with millisecond precision.
    ``fail_on`` is the gate threshold, recorded in the invocation's properties.
    """
    return (
        json.dumps(
            sarif_log(assessments, started_at=started_at, finished_at=finished_at, fail_on=fail_on),
            indent=2,
        )
        + "\n"
    )


def sarif_log(
    assessments: Sequence[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> JSON:
    """The SARIF log as a JSON-ready dict (see :func:`render_sarif`)."""
    rule_index = {rule_id: i for i, rule_id in enumerate(CATALOGUE)}
    results = [
        _result(finding, rule_index[finding.rule_id])
        for assessment in assessments
        for finding in assessment.findings
    ]
    notifications = [n for a in assessments if (n := _notification(a)) is not None]
    failed = fail_on is not None and any(
        f.severity >= fail_on for a in assessments for f in a.findings
    )
    # The run is unsuccessful only when it measured nothing: a scan where some
    # endpoints answered is a result, with notifications for the others.
    successful = not assessments or any(a.reachable for a in assessments)
    invocation: JSON = {
        "executionSuccessful": successful,
        "startTimeUtc": sarif_time(started_at),
        "endTimeUtc": sarif_time(finished_at),
        "toolExecutionNotifications": notifications,
        "properties": {
            "fail_on": fail_on.value if fail_on else None,
            "failed": failed,
            "endpoints": len(assessments),
            "unreachable": sum(1 for a in assessments if not a.reachable),
        },
    }
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": _driver()},
                "automationDetails": {"id": f"{AUTOMATION_CATEGORY}/{sarif_time(started_at)}"},
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


def sarif_time(moment: datetime) -> str:
    """SARIF's date-time form: UTC, ``YYYY-MM-DDThh:mm:ss.sssZ``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def artifact_uri(url: str) -> str:
    """The endpoint URL as a valid URI: spaces and non-ASCII percent-encoded, never raising."""
    return quote(url, safe=_URI_SAFE, errors="backslashreplace")


# -- the tool and its rules ------------------------------------------------------


def _driver() -> JSON:
    driver: JSON = {
        "name": TOOL_NAME,
        "version": scanner.__version__,
        "semanticVersion": scanner.__version__,
        "informationUri": INFORMATION_URI,
        "rules": [_rule(r) for r in CATALOGUE.values()],
        "notifications": [
            {
                "id": NOTIFICATION_UNREACHABLE,
                "name": "EndpointUnreachable",
                "shortDescription": {"text": "No probe of the endpoint got a response."},
                "defaultConfiguration": {"level": "error"},
            },
            {
                "id": NOTIFICATION_PROBE_ERRORS,
                "name": "ProbeErrors",
                "shortDescription": {
                    "text": "Some probes of the endpoint got no response; checks that needed "
                    "them may be incomplete."
                },
                "defaultConfiguration": {"level": "warning"},
            },
        ],
    }
    return driver


def _rule_name(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.split("_"))


def _rule(rule: Rule) -> JSON:
    tags = ["security", "cors", rule.category.value]
    if rule.cwe is not None:
        # The tag form GitHub code scanning turns into a CWE link.
        tags.append(f"external/cwe/cwe-{rule.cwe}")
    return {
        "id": rule.id,
        "name": _rule_name(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": _help_text(rule), "markdown": _help_markdown(rule)},
        "defaultConfiguration": {"level": sarif_level(rule.severity)},
        "properties": {
            "tags": tags,
            "security-severity": rule.severity.security_severity,
            # Every finding is proven by recorded exchanges judged as Chromium
            # would; whether an origin is *meant* to read only the policy says.
            "precision": "high",
            "severity": rule.severity.value,
            "category": rule.category.value,
        },
    }


def _help_text(rule: Rule) -> str:
    fix = rule.remediation
    return (
        f"{rule.description}\n\n"
        f"Fix: {fix.generic}\n\n"
        f"Express: {fix.express}\n"
        f"nginx: {fix.nginx}\n"
        f"Apache: {fix.apache}"
    )


def _help_markdown(rule: Rule) -> str:
    fix = rule.remediation
    cwe = (
        f" [CWE-{rule.cwe}](https://cwe.mitre.org/data/definitions/{rule.cwe}.html)"
        if rule.cwe is not None
        else ""
    )
    return (
        f"**{rule.title}** ({rule.severity.value}, {rule.category.value}){cwe}\n\n"
        f"{rule.description}\n\n"
        "## Fix\n\n"
        f"{fix.generic}\n\n"
        f"- **Express** (`cors` package): {fix.express}\n"
        f"- **nginx**: {fix.nginx}\n"
        f"- **Apache httpd**: {fix.apache}\n"
    )


# -- results -------------------------------------------------------------------------


def _cors_headers(e: Evidence) -> list[list[str]]:
    # Every line in order, duplicates kept: two ACAO lines are themselves a defect.
    return [
        [name, value]
        for name, value in e.response_headers
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    ]


def _evidence(e: Evidence) -> JSON:
    return {
        "probe": e.probe_key,
        "origin": e.origin,
        "origin_kind": e.origin_kind,
        "method": e.method,
        "url": e.url,
        "status": e.status,
        "error": e.error,
        "verdict": e.verdict,
        "cors_headers": _cors_headers(e),
    }


def _web_exchange(e: Evidence) -> tuple[JSON, JSON]:
    """SARIF's own request/response objects for the first proving exchange."""
    request: JSON = {
        "protocol": "http",
        "method": e.method,
        "target": e.url,
        "headers": {"Origin": e.origin},
    }
    response: JSON
    if e.status is None:
        response = {"noResponseReceived": True}
    else:
        # A SARIF header map has one value per name: join repeats as Fetch does.
        headers: dict[str, str] = {}
        for name, value in _cors_headers(e):
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = {"protocol": "http", "statusCode": e.status, "headers": headers}
    return request, response


def _location(method: str, url: str) -> JSON:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": artifact_uri(url)},
            # GitHub requires a region; an endpoint has no lines, so line 1.
            "region": {"startLine": 1},
        },
        "logicalLocations": [{"fullyQualifiedName": f"{method} {url}", "kind": "resource"}],
    }


def _result(finding: Finding, rule_index: int) -> JSON:
    fingerprint = finding.fingerprint
    result: JSON = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": sarif_level(finding.severity),
        "message": {"text": finding.summary},
        "locations": [_location(finding.endpoint_method, finding.endpoint_url)],
        "partialFingerprints": {
            FINGERPRINT_KEY: fingerprint,
            GITHUB_FINGERPRINT_KEY: fingerprint,
        },
        "properties": {
            "severity": finding.severity.value,
            # The finding's own severity; the rule's is only its usual one.
            "security-severity": finding.severity.security_severity,
            "category": finding.category.value,
            "method": finding.endpoint_method,
            "url": finding.endpoint_url,
            "origin_class": finding.origin_class,
            "credentialed": finding.credentialed,
            "related": list(finding.related),
            "evidence": [_evidence(e) for e in finding.evidence],
        },
    }
    if finding.evidence:
        result["webRequest"], result["webResponse"] = _web_exchange(finding.evidence[0])
    return result


# -- notifications -------------------------------------------------------------------


def _notification(assessment: Assessment) -> JSON | None:
    errors = assessment.errors
    if not errors:
        return None
    endpoint = assessment.endpoint
    method = endpoint.method.upper()
    kinds = Counter(o.error.value for o in errors if o.error is not None)
    breakdown = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    if assessment.reachable:
        descriptor, level = NOTIFICATION_PROBE_ERRORS, "warning"
        text = (
            f"{method} {endpoint.url}: {len(errors)} of {assessment.probe_count} probes got no "
            f"response ({breakdown}); checks that needed them may be incomplete."
        )
        if assessment.not_sent:
            text += f" {assessment.not_sent}."
    else:
        descriptor, level = NOTIFICATION_UNREACHABLE, "error"
        first = errors[0]
        detail = f": {first.error_detail}" if first.error_detail else ""
        text = (
            f"{method} {endpoint.url}: no probe got a response ({breakdown}); first error "
            f"{first.error.value if first.error else 'unknown'}{detail}. Nothing was checked."
        )
        if assessment.not_sent:
            text += f" {assessment.not_sent}."
    return {
        "message": {"text": text},
        "level": level,
        "descriptor": {"id": descriptor, "index": _NOTIFICATIONS.index(descriptor)},
        "locations": [_location(method, endpoint.url)],
    }
