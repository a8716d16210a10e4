"""`cors-scanner scan` and `explain`, in-process, against the demo target on loopback.

``scanner.cli.main`` runs its own event loop (``asyncio.run``), so it is called
in a worker thread while the demo server keeps answering on the test's loop.
capsys captures what the command prints (it swaps ``sys.stdout`` for every thread).
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import EXIT_FINDINGS, EXIT_NOTHING_PROBED, EXIT_OK, EXIT_USAGE, main
from scanner.demo import APP_ORIGIN, DEMO_CASES, DemoCase, case_for

CASES = [pytest.param(case, id=case.path) for case in DEMO_CASES]


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def scan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = await cli("scan", "--format", "json", "--retries", "0", "--no-progress", *argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def flags(case: DemoCase) -> list[str]:
    return list(case.scan_flags())


async def test_reflection_with_credentials_fails_the_gate(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = case_for("/reflect-credentials")
    code = await cli("scan", demo_base + case.path, *flags(case), "--fail-on", "high")
    out = capsys.readouterr().out
    assert code == EXIT_FINDINGS
    assert "reflect_any_origin_credentials" in out


async def test_correct_endpoint_passes_the_gate(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = case_for("/good")
    code = await cli("scan", demo_base + case.path, *flags(case), "--fail-on", "info")
    capsys.readouterr()
    assert code == EXIT_OK


async def test_gate_threshold_decides_the_exit_code(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # /max-age has one low finding: it fails a low gate and passes a high one.
    case = case_for("/max-age")
    assert await cli("scan", demo_base + case.path, *flags(case), "--fail-on", "low") == (
        EXIT_FINDINGS
    )
    assert await cli("scan", demo_base + case.path, *flags(case), "--fail-on", "high") == EXIT_OK
    capsys.readouterr()


async def test_every_url_unreachable_exits_3(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli(
        "scan",
        "--retries",
        "0",
        f"http://127.0.0.1:{closed_port}/a",
        f"http://127.0.0.1:{closed_port}/b",
    )
    capsys.readouterr()
    assert code == EXIT_NOTHING_PROBED


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["not-a-url"], id="no-scheme"),
        pytest.param(["ftp://127.0.0.1/x"], id="ftp"),
        pytest.param(["http://user:pw@127.0.0.1/x"], id="credentials-in-url"),
        pytest.param(
            ["http://127.0.0.1/x", "--allow-origin", "https://app.acme.test/path"],
            id="origin-with-path",
        ),
        pytest.param(["http://127.0.0.1/x", "--allow-origin", "*"], id="origin-star"),
        pytest.param(
            ["http://127.0.0.1/x", "--allow-origin", "app.acme.test"], id="no-scheme-origin"
        ),
    ],
)
async def test_bad_input_exits_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli("scan", *argv)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("cors-scanner: ")
    assert "Traceback" not in err


async def test_json_document_has_the_documented_fields(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = case_for("/reflect-credentials")
    code, doc = await scan_json(capsys, demo_base + case.path, *flags(case))
    assert code == EXIT_FINDINGS
    assert doc["format"] == "cors-scanner.scan"
    assert doc["version"] == 1
    summary = doc["summary"]
    assert summary["endpoints"] == 1
    assert summary["reachable"] == 1
    assert summary["findings"]["critical"] == 1
    assert summary["failed"] is True
    (endpoint,) = doc["endpoints"]
    assert endpoint["url"] == demo_base + case.path
    assert [f["rule_id"] for f in endpoint["findings"]] == ["reflect_any_origin_credentials"]
    finding = endpoint["findings"][0]
    assert finding["severity"] == "critical"
    assert finding["fingerprint"].startswith("fp1:")
    assert finding["evidence"][0]["origin"].endswith(".attacker.example")
    simple = [p for p in endpoint["probes"] if p["kind"] == "simple"]
    assert len(endpoint["probes"]) == endpoint["probe_count"] == summary["probes"]
    for probe in simple:
        assert isinstance(probe["verdict"]["readable"], bool)
        assert isinstance(probe["verdict"]["readable_with_credentials"], bool)
    attacker = next(p for p in simple if p["origin_kind"] == "arbitrary_origin")
    assert attacker["verdict"]["readable_with_credentials"] is True
    legit = next(p for p in simple if p["origin"] == APP_ORIGIN)
    assert legit["trusted"] is True
    assert legit["verdict"]["readable"] is True


async def test_json_verdicts_of_a_correct_endpoint(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case = case_for("/good")
    code, doc = await scan_json(capsys, demo_base + case.path, *flags(case))
    assert code == EXIT_OK
    (endpoint,) = doc["endpoints"]
    assert endpoint["findings"] == []
    simple = {p["origin"]: p["verdict"] for p in endpoint["probes"] if p["kind"] == "simple"}
    assert simple[APP_ORIGIN]["readable_with_credentials"] is True
    attacker = next(
        p["verdict"]
        for p in endpoint["probes"]
        if p["kind"] == "simple" and p["origin_kind"] == "arbitrary_origin"
    )
    assert attacker["readable"] is False
    assert attacker["readable_with_credentials"] is False


async def test_only_origins_sends_exactly_the_given_origin(
    demo_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    only = "https://only.acme.test"
    code, doc = await scan_json(
        capsys,
        demo_base + "/reflect",
        "--allow-origin",
        APP_ORIGIN,
        "--only-origins",
        "--origin",
        only,
        "--fail-on",
        "critical",
    )
    assert code == EXIT_OK
    (endpoint,) = doc["endpoints"]
    probes = endpoint["probes"]
    assert probes
    assert {p["origin"] for p in probes} == {only}
    for probe in probes:
        sent = [value for name, value in probe["request_headers"] if name.lower() == "origin"]
        assert sent == [only]
    # /reflect echoes it: the custom origin is judged like an attacker's.
    assert [f["rule_id"] for f in endpoint["findings"]] == ["reflect_any_origin"]


async def test_only_origins_without_origin_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await cli("scan", "http://127.0.0.1/x", "--only-origins")
    assert code == EXIT_USAGE
    assert "--origin" in capsys.readouterr().err


@pytest.mark.parametrize("case", CASES)
async def test_index_command_finds_what_the_index_promises(
    demo_base: str, capsys: pytest.CaptureFixture[str], case: DemoCase
) -> None:
    # The demo's index tells users to run exactly these flags: they must give its findings.
    code, doc = await scan_json(capsys, demo_base + case.path, *flags(case), "--fail-on", "info")
    (endpoint,) = doc["endpoints"]
    found = sorted((f["rule_id"], f["severity"]) for f in endpoint["findings"])
    assert found == sorted((e.rule_id, e.severity.value) for e in case.expected)
    assert code == (EXIT_FINDINGS if case.expected else EXIT_OK)
    assert endpoint["probe_errors"] == 0


# -- explain, offline ------------------------------------------------------------------

CURL_ALLOWED = (
    "HTTP/2 200\r\n"
    "content-type: application/json\r\n"
    f"access-control-allow-origin: {APP_ORIGIN}\r\n"
    "access-control-allow-credentials: true\r\n"
    "vary: Origin\r\n"
    "\r\n"
    '{"user": "alice"}\r\n'
)
CURL_WILDCARD = (
    "HTTP/1.1 200 OK\nAccess-Control-Allow-Origin: *\nAccess-Control-Allow-Credentials: true\n\n"
)


async def test_explain_offline_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pasted = tmp_path / "headers.txt"
    pasted.write_text(CURL_ALLOWED, encoding="utf-8")
    argv = ["explain", "--origin", APP_ORIGIN, "--credentials", "--response-headers", str(pasted)]
    code = await cli(*argv)
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "ALLOWED" in out

    code = await cli(*argv, "--format", "json")
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert doc["readable"] is True
    assert doc["status"] == 200
    assert doc["request"]["credentials"] is True


async def test_explain_offline_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CURL_WILDCARD))
    code = await cli(
        "explain",
        "--origin",
        APP_ORIGIN,
        "--credentials",
        "--response-headers",
        "-",
        "--format",
        "json",
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_FINDINGS
    assert doc["readable"] is False
    # Chromium's console words: '*' is refused when credentials mode is 'include'.
    assert "wildcard" in doc["reason"]
    assert doc["fixes"]


async def test_explain_offline_without_credentials_accepts_the_wildcard(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CURL_WILDCARD))
    code = await cli("explain", "--origin", APP_ORIGIN, "--response-headers", "-")
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "ALLOWED" in out


async def test_explain_offline_rejects_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli(
        "explain", "--origin", APP_ORIGIN, "--response-headers", str(tmp_path / "missing.txt")
    )
    assert code == EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
