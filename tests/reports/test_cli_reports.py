"""`cors-scanner scan --format sarif|junit|csv -o FILE` against a real reflecting server on loopback.

``scanner.cli.main`` runs its own event loop, so it is called in a worker
thread while the server keeps answering on the test's loop.
"""

from __future__ import annotations

import asyncio
import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema

from scanner.cli import EXIT_FINDINGS, EXIT_NOTHING_PROBED, main


async def scan_to_file(url: str, fmt: str, output: Path, *extra: str) -> int:
    argv = [
        "scan",
        url,
        "--allow-origin",
        "https://app.acme.test",
        "--allow-credentials",
        "--format",
        fmt,
        "-o",
        str(output),
        "--retries",
        "0",
        "--no-progress",
        *extra,
    ]
    return await asyncio.to_thread(main, argv)


async def test_sarif_file_from_a_real_scan_validates(
    reflecting_server: str, tmp_path: Path, sarif_schema: dict[str, Any]
) -> None:
    url = reflecting_server + "/v1/me"
    output = tmp_path / "cors.sarif"
    code = await scan_to_file(url, "sarif", output, "--header", "Authorization: Bearer t0psecret")
    assert code == EXIT_FINDINGS
    text = output.read_text(encoding="utf-8")
    assert "t0psecret" not in text
    doc = json.loads(text)
    for validator in (
        jsonschema.validators.validator_for(sarif_schema),
        jsonschema.Draft7Validator,
    ):
        validator(sarif_schema, format_checker=validator.FORMAT_CHECKER).validate(doc)
    run = doc["runs"][0]
    rule_ids = {r["ruleId"] for r in run["results"]}
    assert "reflect_any_origin_credentials" in rule_ids
    result = next(r for r in run["results"] if r["ruleId"] == "reflect_any_origin_credentials")
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == url
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["startTimeUtc"] <= invocation["endTimeUtc"]


async def test_junit_file_from_a_real_scan_fails_the_reflection(
    reflecting_server: str, tmp_path: Path
) -> None:
    url = reflecting_server + "/v1/me"
    output = tmp_path / "cors.xml"
    code = await scan_to_file(url, "junit", output, "--fail-on", "critical")
    assert code == EXIT_FINDINGS
    root = ET.parse(output).getroot()
    failures = [
        (c.get("classname"), c.get("name"))
        for c in root.iter("testcase")
        if c.find("failure") is not None
    ]
    assert failures == [(f"GET {url}", "reflect_any_origin_credentials")]
    assert root.get("failures") == "1"


async def test_csv_file_from_a_real_scan(reflecting_server: str, tmp_path: Path) -> None:
    url = reflecting_server + "/v1/me"
    output = tmp_path / "cors.csv"
    assert await scan_to_file(url, "csv", output) == EXIT_FINDINGS
    with output.open(encoding="utf-8", newline="") as stream:
        table = list(csv.DictReader(stream))
    critical = [r for r in table if r["severity"] == "critical"]
    assert [(r["url"], r["rule_id"]) for r in critical] == [(url, "reflect_any_origin_credentials")]


async def test_unreachable_scan_still_writes_a_valid_sarif_file(
    tmp_path: Path, sarif_schema: dict[str, Any]
) -> None:
    # Bind and release a port: connecting to it is refused.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    output = tmp_path / "down.sarif"
    code = await scan_to_file(f"http://127.0.0.1:{port}/v1/me", "sarif", output)
    assert code == EXIT_NOTHING_PROBED
    doc = json.loads(output.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(sarif_schema)(sarif_schema).validate(doc)
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["level"] == "error"
