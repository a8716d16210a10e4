"""Reports of stored runs: ``GET /api/v1/scans/{id}/report`` and ``cors-scanner runs report``.

Every run here is a real scan started through the API against misbehaving
targets on 127.0.0.1, stored by the embedded worker; the reports are read
back over HTTP (and through the CLI) and checked against what the run stored.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scanner.cli import EXIT_FINDINGS, EXIT_OK, main
from scanner.core.severity import Severity
from scanner.db.work import prune_probe_details
from scanner.reports import stored as stored_reports
from scanner.reports.csv import COLUMNS
from scanner.reports.stored import ReportFormat, load_run, render_run
from tests.api.client import Api
from tests.api.targets import serve_target

SCANS = "/api/v1/scans"
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "reports" / "sarif-schema-2.1.0.json"
RULE = "reflect_any_origin_credentials"


@dataclass
class Run:
    api: Api
    id: int
    scan: dict[str, Any]
    findings: list[dict[str, Any]]
    probes: list[dict[str, Any]]


async def _add(api: Api, url: str, **fields: Any) -> int:
    reply = await api.post("/api/v1/endpoints", {"url": url, **fields})
    assert reply.status == 201, reply.text
    return int(reply.body["id"])


async def _wait_final(api: Api, scan_id: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        reply = await api.get(f"{SCANS}/{scan_id}")
        assert reply.status == 200, reply.text
        if reply.body["status"] in ("completed", "failed", "cancelled"):
            return reply.body
        assert loop.time() < deadline, f"scan still {reply.body['status']}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def target() -> AsyncIterator[str]:
    async with serve_target() as base:
        yield base


async def _scan(api: Api, tag: str) -> Run:
    started = await api.post(SCANS, {"tag": tag}, token="write")
    assert started.status == 202, started.text
    scan = await _wait_final(api, started.body["id"])
    assert scan["status"] == "completed", scan
    findings = await api.walk(f"{SCANS}/{scan['id']}/findings", token="read")
    probes = await api.walk(f"{SCANS}/{scan['id']}/probes", token="read")
    return Run(api, scan["id"], scan, findings, probes)


@pytest.fixture
async def run(api: Api, target: str) -> Run:
    """A completed run of a credentialed reflector (critical finding) and a closed endpoint."""
    await _add(api, f"{target}/reflect-credentials", tags=["payments"], name="accounts")
    await _add(api, f"{target}/closed", tags=["payments"])
    done = await _scan(api, "payments")
    assert any(f["rule_id"] == RULE for f in done.findings)
    return done


@pytest.fixture
async def quiet_run(api: Api, target: str) -> Run:
    """A completed run of an endpoint without CORS: nothing at or above high."""
    await _add(api, f"{target}/closed?team=quiet", tags=["quiet"])
    done = await _scan(api, "quiet")
    assert all(f["severity"] not in ("high", "critical") for f in done.findings)
    return done


async def report(run: Run, fmt: str | None, **params: str) -> Any:
    query = dict(params)
    if fmt is not None:
        query["format"] = fmt
    return await run.api.get(f"{SCANS}/{run.id}/report", token="read", params=query)


def _stored_probe(doc: dict[str, Any]) -> dict[str, Any]:
    """A report probe in the shape /probes serves (which has no trusted/sendable flags)."""
    keys = [
        "key",
        "kind",
        "purpose",
        "origin",
        "origin_kind",
        "method",
        "url",
        "request_headers",
        "status",
        "reason",
        "response_headers",
        "error",
        "error_detail",
        "elapsed_ms",
        "attempts",
        "verdict",
    ]
    return {k: doc[k] for k in keys}


async def test_json_report_is_the_scan_document_of_what_the_run_stored(run: Run) -> None:
    reply = await report(run, None)  # json is the default
    assert reply.status == 200, reply.text
    assert reply.content_type == "application/json"
    assert reply.headers["Content-Disposition"] == (
        f'attachment; filename="cors-scanner-run-{run.id}.json"'
    )
    assert reply.headers["X-Cors-Scanner-Failed"] == "true"  # critical >= high
    doc = reply.body
    assert doc["format"] == "cors-scanner.scan"
    assert doc["version"] == 1
    assert doc["run"] == {"id": run.id, "status": "completed", "trigger": "api", "error": None}
    assert doc["started_at"].startswith(run.scan["started_at"][:19])
    summary = doc["summary"]
    assert summary["endpoints"] == 2
    assert summary["reachable"] == 2
    assert summary["probes"] == run.scan["progress"]["probes"]
    assert summary["findings"] == run.scan["findings"]["by_severity"]
    assert summary["fail_on"] == "high"
    assert summary["failed"] is True

    by_url = {e["url"]: e for e in doc["endpoints"]}
    reflect = next(u for u in by_url if u.endswith("/reflect-credentials"))
    assert by_url[reflect]["name"] == "accounts"
    reported = [f for e in doc["endpoints"] for f in e["findings"]]
    assert sorted(f["fingerprint"] for f in reported) == sorted(
        f["fingerprint"] for f in run.findings
    )
    stored = {f["fingerprint"]: f for f in run.findings}
    for finding in reported:
        assert finding["evidence"] == stored[finding["fingerprint"]]["evidence"]
        assert finding["severity"] == stored[finding["fingerprint"]]["severity"]

    # Every exchange comes back as stored, browser verdicts included (recomputed
    # from the stored exchange and policy, they must agree with what was saved).
    probes = [p for e in doc["endpoints"] for p in e["probes"]]
    assert sorted((_stored_probe(p) for p in probes), key=lambda p: (p["url"], p["key"])) == sorted(
        (
            {k: v for k, v in p.items() if k not in ("id", "scan_id", "endpoint_id")}
            for p in run.probes
        ),
        key=lambda p: (p["url"], p["key"]),
    )
    foreign = [p for p in probes if p["origin_kind"] == "arbitrary_origin"]
    assert foreign, "the scan sent a foreign origin"
    assert all(p["browser_sendable"] and not p["trusted"] for p in foreign)


async def test_sarif_report_validates_and_carries_every_finding(run: Run) -> None:
    reply = await report(run, "sarif")
    assert reply.status == 200, reply.text
    assert reply.content_type == "application/sarif+json"
    assert reply.headers["Content-Disposition"].endswith(f'cors-scanner-run-{run.id}.sarif"')
    doc = json.loads(reply.text)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    errors = list(validator(schema, format_checker=validator.FORMAT_CHECKER).iter_errors(doc))
    assert errors == []
    results = doc["runs"][0]["results"]
    assert len(results) == len(run.findings)
    assert {r["partialFingerprints"]["corsScannerFingerprint/v1"] for r in results} == {
        f["fingerprint"] for f in run.findings
    }
    critical = [r for r in results if r["ruleId"] == RULE]
    assert len(critical) == 1
    assert critical[0]["level"] == "error"
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["properties"]["failed"] is True


async def test_junit_report_fails_at_the_threshold_asked_for(run: Run) -> None:
    reply = await report(run, "junit", fail_on="high")
    assert reply.status == 200, reply.text
    assert reply.content_type == "application/xml"
    assert reply.headers["Content-Disposition"].endswith(f'cors-scanner-run-{run.id}.xml"')
    suite = ET.fromstring(reply.text.encode())[0]
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert int(suite.attrib["failures"]) == len(failed) >= 1
    assert any(c.attrib["name"] == RULE for c in failed)
    assert int(suite.attrib["errors"]) == 0  # both endpoints answered

    # At "critical" only the critical findings' checks fail; the rest pass with output.
    lenient = await report(run, "junit", fail_on="critical")
    suite = ET.fromstring(lenient.text.encode())[0]
    failed_names = {
        c.attrib["name"] for c in suite.iter("testcase") if c.find("failure") is not None
    }
    worst = {f["rule_id"] for f in run.findings if f["severity"] == "critical"}
    assert failed_names == worst


async def test_csv_report_has_one_row_per_finding(run: Run) -> None:
    reply = await report(run, "csv")
    assert reply.status == 200, reply.text
    assert reply.content_type == "text/csv"
    assert reply.headers["Content-Disposition"].endswith(f'cors-scanner-run-{run.id}.csv"')
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) - 1 == len(run.findings)
    fingerprints = {r[COLUMNS.index("fingerprint")] for r in rows[1:]}
    assert fingerprints == {f["fingerprint"] for f in run.findings}


async def test_gate_header_follows_fail_on(run: Run, quiet_run: Run) -> None:
    failing = await report(run, "csv", fail_on="critical")
    assert failing.headers["X-Cors-Scanner-Failed"] == "true"
    passing = await report(quiet_run, "junit", fail_on="high")
    assert passing.status == 200, passing.text
    assert passing.headers["X-Cors-Scanner-Failed"] == "false"
    suite = ET.fromstring(passing.text.encode())[0]
    assert suite.attrib["failures"] == "0"


async def test_a_pruned_run_still_reports_its_findings_and_reachability(run: Run) -> None:
    # Retention deletes probe rows of old runs; findings and endpoint results stay.
    async with run.api.database.session() as session, session.begin():
        deleted = await prune_probe_details(session, older_than=datetime.now(UTC) + timedelta(1))
    assert deleted == len(run.probes)

    doc = (await report(run, "json")).body
    assert doc["summary"]["reachable"] == 2
    assert doc["summary"]["probes"] == run.scan["progress"]["probes"]
    assert all(e["probes"] == [] for e in doc["endpoints"])
    assert len([f for e in doc["endpoints"] for f in e["findings"]]) == len(run.findings)
    junit = await report(run, "junit")
    suite = ET.fromstring(junit.text.encode())[0]
    assert suite.attrib["errors"] == "0"  # not "unreachable": the run recorded answers
    assert int(suite.attrib["failures"]) >= 1


async def test_unknown_run_is_404_and_bad_parameters_are_422(api: Api) -> None:
    missing = await api.get(f"{SCANS}/999999/report", token="read")
    assert missing.status == 404
    assert missing.problem["code"] == "not_found"
    reply = await api.get(f"{SCANS}/1/report", token="read", params={"format": "pdf"})
    assert reply.status == 422
    assert reply.fields() == ["query.format"]
    reply = await api.get(f"{SCANS}/1/report", token="read", params={"fail_on": "severe"})
    assert reply.status == 422
    assert reply.fields() == ["query.fail_on"]


async def test_report_needs_a_read_token(api: Api) -> None:
    reply = await api.get(f"{SCANS}/1/report", token=None)
    assert reply.status == 401
    assert reply.problem["code"] == "unauthorized"


async def test_a_running_scan_has_no_report_yet(api: Api, target: str) -> None:
    await _add(api, f"{target}/slow")
    started = await api.post(SCANS, {}, token="write")
    assert started.status == 202, started.text
    scan_id = started.body["id"]
    try:
        reply = await api.get(f"{SCANS}/{scan_id}/report", token="read")
        assert reply.status == 409
        assert reply.problem["code"] == "conflict"
        assert "once it has finished" in reply.problem["detail"]
    finally:
        cancelled = await api.post(f"{SCANS}/{scan_id}/cancel", token="write")
        assert cancelled.status in (200, 409), cancelled.text
    # A cancelled run is final: its (partial) report is served.
    await _wait_final(api, scan_id)
    reply = await api.get(f"{SCANS}/{scan_id}/report", token="read")
    assert reply.status == 200, reply.text
    assert reply.body["run"]["status"] == "cancelled"


# -- the CLI -----------------------------------------------------------------------


@pytest.fixture
def cli_env(run: Run, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", run.api.database.url)
    return run


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI in a thread: the served app's worker keeps running on this loop meanwhile.

    (Run from a sync test, the CLI froze the fixture's loop, and with it any SQLite write
    transaction the embedded worker had open: the CLI then failed with "database is locked".)
    """
    capsys.readouterr()

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    code = await asyncio.to_thread(run)
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_report_writes_the_same_document_and_gates(
    cli_env: Run, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = cli_env
    code, out, err = await _cli(capsys, "runs", "report", str(run.id), "--format", "csv")
    assert code == EXIT_FINDINGS, err  # a critical finding, default --fail-on high
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) - 1 == len(run.findings)

    target = tmp_path / "run.sarif"
    code, out, err = await _cli(
        capsys, "runs", "report", str(run.id), "--format", "sarif", "-o", str(target)
    )
    assert code == EXIT_FINDINGS, err
    assert out == ""
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert len(doc["runs"][0]["results"]) == len(run.findings)

    code, out, err = await _cli(capsys, "runs", "report", str(run.id), "--fail-on", "critical")
    assert code == EXIT_FINDINGS, err
    assert json.loads(out)["run"]["id"] == run.id  # json by default


@pytest.fixture
def quiet_cli_env(quiet_run: Run, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", quiet_run.api.database.url)
    return quiet_run


async def test_cli_report_exits_0_below_the_gate(
    quiet_cli_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _cli(
        capsys, "runs", "report", str(quiet_cli_env.id), "--format", "junit", "--fail-on", "high"
    )
    assert code == EXIT_OK, (code, err, out[:3000])
    assert ET.fromstring(out.encode())[0].attrib["failures"] == "0"


async def test_cli_report_of_an_unknown_run_is_a_usage_error(
    cli_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await _cli(capsys, "runs", "report", "999999")
    assert code == 2
    assert "999999" in err


async def test_the_json_report_streams_exactly_what_render_run_renders(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two endpoints a piece: the stream is pieced together across chunks.
    monkeypatch.setattr(stored_reports, "_REPORT_CHUNK", 1)
    for pruned in (False, True):
        if pruned:
            async with run.api.database.session() as session, session.begin():
                await prune_probe_details(session, older_than=datetime.now(UTC) + timedelta(1))
        for gate in ("high", "info"):
            reply = await report(run, "json", fail_on=gate)
            assert reply.status == 200, reply.text
            assert reply.headers.get("Transfer-Encoding") == "chunked"
            async with run.api.database.session() as session:
                whole = render_run(
                    await load_run(session, run.id), ReportFormat.JSON, Severity(gate)
                )
            assert reply.text == whole
            assert reply.headers["X-Cors-Scanner-Failed"] == "true"
