"""SARIF output: valid against the official OASIS 2.1.0 schema, and carrying what consumers use."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from sample_scans import FINISHED, STARTED, assessment, reflector

from scanner.core.catalogue import CATALOGUE
from scanner.core.checks import Assessment
from scanner.core.plan import ProbeKind
from scanner.core.severity import Severity
from scanner.reports.sarif import render_sarif

Doc = dict[str, Any]


def render(assessments: list[Assessment], fail_on: Severity | None = Severity.HIGH) -> Doc:
    text = render_sarif(assessments, started_at=STARTED, finished_at=FINISHED, fail_on=fail_on)
    doc: Doc = json.loads(text)
    return doc


def schema_errors(doc: Doc, schema: Doc) -> list[str]:
    """Every violation, under the draft the schema declares and under Draft 7, formats checked."""
    declared = jsonschema.validators.validator_for(schema)
    messages = []
    for validator in (declared, jsonschema.Draft7Validator):
        checker = validator(schema, format_checker=validator.FORMAT_CHECKER)
        messages += [f"{e.json_path}: {e.message}" for e in checker.iter_errors(doc)]
    return messages


def results_for(doc: Doc, url: str) -> list[Doc]:
    run = doc["runs"][0]
    return [
        r
        for r in run["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == url
    ]


def test_the_shipped_schema_is_the_official_one(sarif_schema: Doc) -> None:
    assert (
        sarif_schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    )
    assert sarif_schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    assert sarif_schema["properties"]["version"]["enum"] == ["2.1.0"]
    # The schema itself is valid under the draft it declares and under Draft 7.
    jsonschema.validators.validator_for(sarif_schema).check_schema(sarif_schema)
    jsonschema.Draft7Validator.check_schema(sarif_schema)


def test_the_schema_rejects_a_broken_log(sarif_schema: Doc, scan: list[Assessment]) -> None:
    # Guards the validation itself: a wrong level and a missing message must be caught.
    doc = render(scan)
    result = doc["runs"][0]["results"][0]
    result["level"] = "critical"
    del result["message"]
    errors = schema_errors(doc, sarif_schema)
    assert any("level" in e for e in errors)
    assert any("message" in e for e in errors)


def test_a_whole_scan_validates_against_the_official_schema(
    sarif_schema: Doc, scan: list[Assessment], hostile_assessment: Assessment
) -> None:
    doc = render([*scan, hostile_assessment])
    assert schema_errors(doc, sarif_schema) == []
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].startswith("https://")
    assert len(doc["runs"]) == 1


def test_every_catalogue_rule_is_described_with_its_fixes(scan: list[Assessment]) -> None:
    driver = render(scan)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "cors-scanner"
    assert driver["version"]
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(CATALOGUE)
    for sarif_rule in rules:
        rule = CATALOGUE[sarif_rule["id"]]
        assert sarif_rule["shortDescription"]["text"] == rule.title
        assert sarif_rule["fullDescription"]["text"] == rule.description
        for fix in (
            rule.remediation.generic,
            rule.remediation.express,
            rule.remediation.nginx,
            rule.remediation.apache,
        ):
            assert fix in sarif_rule["help"]["text"]
            assert fix in sarif_rule["help"]["markdown"]
        props = sarif_rule["properties"]
        assert props["tags"][:3] == ["security", "cors", rule.category.value]
        assert props["security-severity"] == rule.severity.security_severity
        assert float(props["security-severity"]) >= 0
        assert props["precision"] in ("very-high", "high", "medium", "low")
        level = sarif_rule["defaultConfiguration"]["level"]
        assert level == {"critical": "error", "high": "error", "medium": "warning"}.get(
            rule.severity.value, "note"
        )


def test_reflection_with_credentials_is_an_error_result_with_evidence(
    scan: list[Assessment],
) -> None:
    doc = render(scan)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    finding = scan[0].findings[0]
    [result] = results_for(doc, "https://api.acme.com/v1/me")
    assert result["ruleId"] == "reflect_any_origin_credentials"
    assert rules[result["ruleIndex"]]["id"] == "reflect_any_origin_credentials"
    assert result["level"] == "error"
    assert result["message"]["text"] == finding.summary
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert result["partialFingerprints"] == {
        "corsScannerFingerprint/v1": finding.fingerprint,
        "primaryLocationLineHash": finding.fingerprint,
    }
    props = result["properties"]
    assert props["severity"] == "critical"
    assert props["method"] == "GET"
    assert props["origin_class"] == "arbitrary_origin"
    assert props["credentialed"] is True
    first = props["evidence"][0]
    assert first["origin"].endswith(".attacker.example")
    assert first["status"] == 200
    assert ["Access-Control-Allow-Origin", first["origin"]] in first["cors_headers"]
    assert ["Access-Control-Allow-Credentials", "true"] in first["cors_headers"]
    assert result["webResponse"]["statusCode"] == 200


def test_levels_follow_the_finding_severity(
    scan: list[Assessment], hostile_assessment: Assessment
) -> None:
    doc = render([*scan, hostile_assessment])
    [wildcard] = results_for(doc, "https://api.acme.com/v1/public")
    assert (wildcard["ruleId"], wildcard["level"]) == ("wildcard_public", "note")
    evil = {r["ruleId"]: r["level"] for r in results_for(doc, "https://api.acme.com/v1/evil")}
    assert evil == {"legit_origin_blocked": "error", "invalid_acao": "warning"}
    # A clean endpoint and an unreachable one produce no result at all.
    assert results_for(doc, "https://api.acme.com/v1/ok") == []
    assert results_for(doc, "https://down.acme.com/v1/me") == []


def test_fingerprints_are_stable_across_runs(scan: list[Assessment]) -> None:
    again = [assessment("https://api.acme.com/v1/me", reflector)]
    first = render(scan[:1])["runs"][0]["results"][0]["partialFingerprints"]
    second = render(again)["runs"][0]["results"][0]["partialFingerprints"]
    assert first == second


def test_unreachable_endpoints_are_tool_notifications(scan: list[Assessment]) -> None:
    run = render(scan)["runs"][0]
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is True  # three endpoints did answer
    assert invocation["startTimeUtc"] == "2026-01-02T03:04:05.678Z"
    assert invocation["endTimeUtc"] == "2026-01-02T03:04:08.178Z"
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error"
    assert notification["descriptor"]["id"] == "endpoint_unreachable"
    assert "https://down.acme.com/v1/me" in notification["message"]["text"]
    assert "connect" in notification["message"]["text"]
    location = notification["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "https://down.acme.com/v1/me"
    assert invocation["properties"]["fail_on"] == "high"
    assert invocation["properties"]["failed"] is True
    assert run["automationDetails"]["id"] == "cors-scanner/2026-01-02T03:04:05.678Z"


def test_a_scan_that_reached_nothing_did_not_execute_successfully(
    sarif_schema: Doc, scan: list[Assessment]
) -> None:
    doc = render([scan[2]])
    assert schema_errors(doc, sarif_schema) == []
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert doc["runs"][0]["results"] == []


def test_gate_outcome_depends_on_fail_on(scan: list[Assessment]) -> None:
    wildcard_only = [scan[1]]
    assert render(wildcard_only, Severity.INFO)["runs"][0]["invocations"][0]["properties"]["failed"]
    assert not render(wildcard_only, Severity.LOW)["runs"][0]["invocations"][0]["properties"][
        "failed"
    ]


def test_urls_that_are_not_plain_ascii_still_make_valid_uris(sarif_schema: Doc) -> None:
    # The scanner refuses spaces; non-ASCII paths and characters RFC 3986 excludes pass.
    url = "https://api.acme.com/v1/caf\u00e9/%7Bid%7D?q=a|b^c"
    doc = render([assessment(url, reflector)])
    assert schema_errors(doc, sarif_schema) == []
    [result] = doc["runs"][0]["results"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "https://api.acme.com/v1/caf%C3%A9/%7Bid%7D?q=a%7Cb%5Ec"
    assert result["properties"]["url"] == url  # the exact text stays in the properties


@pytest.mark.parametrize("secret", ["Bearer s3cr3t-t0ken-value"])
def test_request_headers_never_reach_the_report(secret: str) -> None:
    # The user's --header credentials are on every actual request (never on a
    # preflight, as in a browser); SARIF files get uploaded widely.
    scanned = assessment(
        "https://api.acme.com/v1/me", reflector, extra_headers=(("Authorization", secret),)
    )
    sent = {
        p.observation.request.kind: p.observation.request.headers.get_all("authorization")
        for p in scanned.probes
    }
    assert sent[ProbeKind.SIMPLE] == (secret,)
    assert sent[ProbeKind.PREFLIGHT] == ()
    text = render_sarif([scanned], started_at=STARTED, finished_at=FINISHED, fail_on=Severity.HIGH)
    assert "s3cr3t" not in text
