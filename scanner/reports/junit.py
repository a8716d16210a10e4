"""JUnit XML for CI gates (`scan --format junit`): every CI system renders it as test results.

There is no JUnit standard; this follows the de facto shape (Ant's XSD, as
GitLab, Jenkins, Azure DevOps and the GitHub test-report actions read it):

- one ``<testsuite>`` per scan;
- per endpoint, a ``reachable`` test case (an ``<error>`` when no probe got a
  response) and one test case per catalogue rule, ``classname`` being
  ``"METHOD URL"`` and ``name`` the rule id, so every run has the same test
  cases and CI history lines up;
- a finding at or above ``fail_on`` is a ``<failure>`` (``type`` = rule id,
  ``message`` = "severity: title", the evidence as text); findings below the
  threshold pass, noted in ``<system-out>``; rules that could not be checked
  (not applicable to the policy, the error-path probe failed, the endpoint was
  unreachable) are ``<skipped>`` with the reason.

Evidence carries bytes from hostile servers: every string goes through
:func:`xml_safe` (characters XML 1.0 cannot represent are written as ``\\xNN``
escapes) and ElementTree escapes markup, so the document always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import scanner
from scanner.core.catalogue import CATALOGUE, rule
from scanner.core.checks import Assessment
from scanner.core.findings import Evidence, Finding
from scanner.core.severity import Severity

SUITE_NAME = "cors-scanner"
REACHABLE_CASE = "reachable"
UNREACHABLE_TYPE = "endpoint_unreachable"
MAX_ERROR_LINES = 10  # failed probes listed for an unreachable endpoint; the rest are counted

# XML 1.0 Char production: TAB, LF, CR, and the rest of Unicode minus the C0
# controls, surrogates, U+FFFE and U+FFFF. Anything else makes the file unparseable.
_NOT_XML_CHAR = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 forbids replaced by a visible escape.

    ``\\x00`` becomes the four characters ``\\x00`` (not deleted: the evidence
    should show that the server sent it); lone surrogates become ``\\udXXX``.
    """
    return _NOT_XML_CHAR.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def render_junit(
    assessments: Sequence[Assessment],
    *,
    started_at: datetime,
    finished_at: datetime,
    fail_on: Severity | None,
) -> str:
    """The scan as a JUnit XML document (UTF-8 declaration, newline-terminated).

    ``fail_on`` None means no finding fails: all are reported as passing with
    ``<system-out>``. ``time`` attributes are seconds; ``timestamp`` is the
    start in UTC without an offset, as the Ant schema wants it.
    """
    suite = ET.Element("testsuite")
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("cors-scanner.version", scanner.__version__),
        ("fail_on", fail_on.value if fail_on else "none"),
    ):
        ET.SubElement(properties, "property", name=name, value=value)

    counts: Counter[str] = Counter()
    for assessment in assessments:
        for case in _cases(assessment, fail_on):
            suite.append(case)
            counts["tests"] += 1
            for outcome in ("failure", "error", "skipped"):
                if case.find(outcome) is not None:
                    counts[outcome] += 1

    seconds = f"{max((finished_at - started_at).total_seconds(), 0.0):.3f}"
    attributes = {
        "name": SUITE_NAME,
        "tests": str(counts["tests"]),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": seconds,
        "timestamp": _timestamp(started_at),
    }
    suite.attrib.update(attributes)
    root = ET.Element("testsuites", attributes)
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _case(assessment: Assessment, name: str) -> ET.Element:
    endpoint = assessment.endpoint
    classname = xml_safe(f"{endpoint.method.upper()} {endpoint.url}")
    return ET.Element("testcase", classname=classname, name=name, time="0")


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attributes.items()})
    if text:
        element.text = xml_safe(text)
    return element


def _cases(assessment: Assessment, fail_on: Severity | None) -> list[ET.Element]:
    cases = [_reachable_case(assessment)]
    by_rule: dict[str, list[Finding]] = {}
    for finding in assessment.findings:
        by_rule.setdefault(finding.rule_id, []).append(finding)
    notes: dict[str, list[str]] = {}
    for line in assessment.unchecked:
        rule_id, _, reason = line.partition(":")
        notes.setdefault(rule_id.strip(), []).append(reason.strip() or line)

    for rule_id in CATALOGUE:
        case = _case(assessment, rule_id)
        cases.append(case)
        findings = by_rule.get(rule_id, [])
        reasons = notes.get(rule_id, [])
        if not assessment.reachable:
            _text(
                case, "skipped", "", message="not checked: no probe of the endpoint got a response"
            )
            continue
        failing = [f for f in findings if fail_on is not None and f.severity >= fail_on]
        passing = [f for f in findings if f not in failing]
        if failing:
            worst = failing[0]  # findings come worst first
            _text(
                case,
                "failure",
                "\n\n".join(_describe(f) for f in failing),
                type=rule_id,
                message=f"{worst.severity.value}: {worst.title}",
            )
        elif not findings and reasons:
            _text(case, "skipped", "", message="; ".join(reasons))
        out = [
            f"{f.severity.value} finding below the fail-on threshold "
            f"({fail_on.value if fail_on else 'none'}):\n{_describe(f)}"
            for f in passing
        ]
        if findings and reasons:
            out.append("Not fully checked: " + "; ".join(reasons))
        if out:
            _text(case, "system-out", "\n\n".join(out))
    return cases


def _reachable_case(assessment: Assessment) -> ET.Element:
    case = _case(assessment, REACHABLE_CASE)
    errors = assessment.errors
    if not errors:
        return case
    kinds = Counter(o.error.value for o in errors if o.error is not None)
    breakdown = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    if assessment.reachable:
        _text(
            case,
            "system-out",
            f"{len(errors)} of {assessment.probe_count} probes got no response ({breakdown}); "
            "checks that needed them may be incomplete."
            + (f"\n{assessment.not_sent}" if assessment.not_sent else ""),
        )
        return case
    first = errors[0]
    lines = [
        f"{o.request.method} {o.request.url} (Origin: {o.request.origin.value}): "
        f"{o.error.value if o.error else 'no response'}"
        + (f": {o.error_detail}" if o.error_detail else "")
        for o in errors[:MAX_ERROR_LINES]
    ]
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"... and {len(errors) - MAX_ERROR_LINES} more probes with no response")
    if assessment.not_sent:
        lines.insert(0, assessment.not_sent)
    _text(
        case,
        "error",
        "\n".join(lines),
        type=UNREACHABLE_TYPE,
        message=f"no probe got a response ({breakdown})"
        + (f": {first.error_detail}" if first.error_detail else ""),
    )
    return case


def _describe(finding: Finding) -> str:
    """A finding as plain text: what, why, and the exchanges that prove it."""
    lines = [
        f"{finding.severity.value}: {finding.title}",
        finding.summary,
        f"rule: {finding.rule_id}  fingerprint: {finding.fingerprint}",
        f"origin class: {finding.origin_class}"
        + (" (readable with credentials)" if finding.credentialed else "")
        + (f"; also covers: {', '.join(finding.related)}" if finding.related else ""),
        "evidence:",
    ]
    for e in finding.evidence:
        lines.extend(_evidence_lines(e))
    lines.append(f"fix: {rule(finding.rule_id).remediation.generic}")
    return "\n".join(lines)


def _evidence_lines(e: Evidence) -> list[str]:
    outcome = str(e.status) if e.status is not None else (e.error or "no response")
    lines = [f"  Origin: {e.origin} -> {e.method} {e.url} -> {outcome} ({e.verdict})"]
    cors = [
        f"    {name}: {value}"
        for name, value in e.response_headers
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    ]
    return lines + (cors or ["    (no CORS response headers)"])
