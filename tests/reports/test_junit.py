"""JUnit XML output: parses, counts what a CI gate counts, survives hostile header values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sample_scans import FINISHED, HOSTILE_ACAO, STARTED

from scanner.core.catalogue import CATALOGUE
from scanner.core.checks import Assessment
from scanner.core.severity import Severity
from scanner.reports.junit import render_junit, xml_safe

CASES_PER_ENDPOINT = len(CATALOGUE) + 1  # one per rule, plus "reachable"


def render(assessments: list[Assessment], fail_on: Severity | None) -> ET.Element:
    text = render_junit(assessments, started_at=STARTED, finished_at=FINISHED, fail_on=fail_on)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text)


def case(root: ET.Element, endpoint: str, name: str) -> ET.Element:
    found = [
        c for c in root.iter("testcase") if c.get("classname") == endpoint and c.get("name") == name
    ]
    assert len(found) == 1, f"{endpoint} {name}: {len(found)} test cases"
    return found[0]


def outcome(c: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if c.find(tag) is not None:
            return tag
    return "passed"


def tally(root: ET.Element) -> dict[str, int]:
    counts = {"tests": 0, "failure": 0, "error": 0, "skipped": 0}
    for c in root.iter("testcase"):
        counts["tests"] += 1
        if (result := outcome(c)) != "passed":
            counts[result] += 1
    return counts


def test_one_suite_with_a_case_per_endpoint_and_rule(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("name") == "cors-scanner"
    assert suite.get("time") == "2.500"
    assert suite.get("timestamp") == "2026-01-02T03:04:05"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["fail_on"] == "high"
    names = [(c.get("classname"), c.get("name")) for c in suite.findall("testcase")]
    assert len(names) == len(set(names)) == 4 * CASES_PER_ENDPOINT
    assert ("GET https://api.acme.com/v1/me", "reflect_any_origin_credentials") in names
    assert ("GET https://down.acme.com/v1/me", "reachable") in names


def test_counts_at_fail_on_high(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    suite = root.find("testsuite")
    assert suite is not None
    counted = tally(root)
    # One failing rule (the critical reflection; the wildcard's info finding is
    # below high). The unreachable endpoint is one error with all its rules
    # skipped; four more skips are checks that did not apply: the preflight on
    # the reflecting and the clean endpoint (GET needs none), and on the
    # wildcard endpoint legit_origin_blocked (no allowed origin) and
    # cors_missing_on_error (its error path answered 200).
    assert counted == {
        "tests": 4 * CASES_PER_ENDPOINT,
        "failure": 1,
        "error": 1,
        "skipped": len(CATALOGUE) + 4,
    }
    for element in (root, suite):
        assert element.get("tests") == str(counted["tests"])
        assert element.get("failures") == "1"
        assert element.get("errors") == "1"
        assert element.get("skipped") == str(counted["skipped"])


def test_failure_names_the_rule_severity_and_evidence(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    failing = case(root, "GET https://api.acme.com/v1/me", "reflect_any_origin_credentials")
    failure = failing.find("failure")
    assert failure is not None
    assert failure.get("type") == "reflect_any_origin_credentials"
    assert failure.get("message") == (
        "critical: Any origin can read responses with the user's credentials"
    )
    body = failure.text or ""
    finding = scan[0].findings[0]
    assert finding.fingerprint in body
    assert f"Origin: {finding.evidence[0].origin} -> GET" in body
    assert "Access-Control-Allow-Credentials: true" in body
    assert "fix: " in body
    # Rules that did not fire on that endpoint pass.
    assert outcome(case(root, "GET https://api.acme.com/v1/me", "invalid_acao")) == "passed"


def test_findings_below_the_threshold_pass_with_a_note(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    wildcard = case(root, "GET https://api.acme.com/v1/public", "wildcard_public")
    assert outcome(wildcard) == "passed"
    note = wildcard.findtext("system-out") or ""
    assert "below the fail-on threshold (high)" in note
    assert "Access-Control-Allow-Origin: *" in note


@pytest.mark.parametrize(
    ("fail_on", "failures"),
    [
        (Severity.CRITICAL, 1),
        (Severity.HIGH, 1),
        (Severity.INFO, 2),  # the wildcard's info finding now fails too
        (None, 0),
    ],
)
def test_the_threshold_decides_what_fails(
    scan: list[Assessment], fail_on: Severity | None, failures: int
) -> None:
    root = render(scan, fail_on)
    assert tally(root)["failure"] == failures
    assert root.get("failures") == str(failures)


def test_unreachable_endpoint_is_one_error_and_nothing_checked(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    endpoint = "GET https://down.acme.com/v1/me"
    error = case(root, endpoint, "reachable").find("error")
    assert error is not None
    assert error.get("type") == "endpoint_unreachable"
    assert "connect" in (error.get("message") or "")
    assert "Connection refused" in (error.text or "")
    outcomes = {outcome(case(root, endpoint, rule_id)) for rule_id in CATALOGUE}
    assert outcomes == {"skipped"}
    # Reachable endpoints pass their "reachable" case.
    assert outcome(case(root, "GET https://api.acme.com/v1/ok", "reachable")) == "passed"


def test_checks_not_applicable_are_skipped_with_the_reason(scan: list[Assessment]) -> None:
    root = render(scan, Severity.HIGH)
    skipped = case(root, "GET https://api.acme.com/v1/public", "legit_origin_blocked").find(
        "skipped"
    )
    assert skipped is not None
    assert skipped.get("message") == "not checked: the policy names no allowed origin"


def test_hostile_header_values_are_escaped_and_the_xml_parses(
    hostile_assessment: Assessment,
) -> None:
    text = render_junit(
        [hostile_assessment], started_at=STARTED, finished_at=FINISHED, fail_on=Severity.MEDIUM
    )
    assert "\x00" not in text
    assert "\x0b" not in text
    assert "<script>" not in text  # only as &lt;script&gt;
    root = ET.fromstring(text)
    failure = case(root, "GET https://api.acme.com/v1/evil", "invalid_acao").find("failure")
    assert failure is not None
    body = failure.text or ""
    # The evidence keeps the hostile value, made visible instead of dropped.
    assert f"Access-Control-Allow-Origin: {xml_safe(HOSTILE_ACAO)}" in body
    assert "\\x00]]><script>alert(1)</script>" in body
    assert "Vary: Origin\\x0b\\x1f]]>" in body


def test_xml_safe_escapes_only_what_xml_forbids() -> None:
    assert xml_safe("a\x00b\x08\x0c\x1f\ufffe") == "a\\x00b\\x08\\x0c\\x1f\\ufffe"
    assert xml_safe("\ud800") == "\\ud800"
    kept = "tab\tnl\ncr\r é ☃ 𝄞 <&>\"']]>"
    assert xml_safe(kept) == kept
