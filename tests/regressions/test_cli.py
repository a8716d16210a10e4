"""`cors-scanner findings|regressions|hooks` in-process against a database with real runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scanner.cli import EXIT_OK, main
from tests.regressions.harness import Runs

RULE = "reflect_any_origin_credentials"


@pytest.fixture
async def seeded(runs: Runs) -> Runs:
    await runs.run("allowlist")
    await runs.run("reflect")
    return runs


class CLI:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--format", "json")
        assert code == EXIT_OK, err
        return json.loads(out)


@pytest.fixture
def cli(seeded: Runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", seeded.database.url)
    return CLI(capsys)


def test_findings_triage_and_history(cli: CLI, seeded: Runs) -> None:
    [finding] = cli.json("findings", "list", "--rule", RULE, "--severity", "high")["items"]
    assert finding["status"] == "new"
    assert cli.json("findings", "list", "--status", "resolved")["items"] == []
    # The README's example shows brand-new findings: open = new + open + reopened.
    readme = cli.json("findings", "list", "--status", "open", "--severity", "high")["items"]
    assert [f["id"] for f in readme] == [finding["id"]]
    assert [f["id"] for f in cli.json("findings", "list", "--status", "new")["items"]] == [
        finding["id"]
    ]
    code, out, _ = cli("findings", "list", "--tag", "pci")
    assert code == EXIT_OK
    assert RULE in out

    code, _, err = cli("findings", "accept", str(finding["id"]), "--reason", "later")
    assert code == 2  # an accepted risk needs --until
    assert "--until" in err
    done = cli.json(
        "findings",
        "accept",
        str(finding["id"]),
        "--reason",
        "JIRA-7",
        "--days",
        "10",
        "--by",
        "alice",
    )
    assert done["status"] == "suppressed"
    assert done["triage"]["by"] == "alice"
    back = cli.json("findings", "reopen", str(finding["id"]))
    assert back["status"] == "open"
    history = cli.json("findings", "history", str(finding["id"]))
    assert history["finding"]["id"] == finding["id"]
    kinds = [e["kind"] for e in history["events"]]
    assert kinds == ["finding.new", "finding.suppressed", "finding.unsuppressed"]

    regressions = cli.json("regressions", "list", "--run", str(seeded.outcomes[1].run_id))
    assert [e["kind"] for e in regressions["items"]] == ["finding.new"]
    assert all(e["is_regression"] for e in regressions["items"])
    code, _, err = cli("findings", "show", "999999")
    assert code != EXIT_OK
    assert "does not exist" in err


def test_hooks_commands(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("hooks", "add", "soc", "--url", "http://127.0.0.1:9/hook")
    assert code == 2
    assert "loopback" in err  # SSRF rules apply to the CLI too
    # ...and the refusal names the setting that allows it, the one the service reads.
    assert "set CORS_SCANNER_HOOK_ALLOW_LOOPBACK=true to allow it" in err
    monkeypatch.setenv("CORS_SCANNER_HOOK_ALLOW_LOOPBACK", "true")
    created = cli.json("hooks", "add", "soc", "--url", "http://127.0.0.1:9/hook")
    assert created["secret"].startswith("whsec_")
    [listed] = cli.json("hooks", "list")["items"]
    assert "secret" not in listed
    assert listed["secret_set"] is True
    queued = cli.json("hooks", "test", str(created["id"]), "--timeout", "0")
    assert queued["event_type"] == "hook.test"
    assert queued["status"] == "queued"
    # Waiting with no dispatcher running: said so, and not a success.
    code, out, _ = cli("hooks", "test", str(created["id"]), "--timeout", "0.3")
    assert code == 1
    assert "was not tried within 0.3 s: is a dispatcher running" in out
    first, *_ = reversed(cli.json("hooks", "deliveries", str(created["id"]))["items"])
    assert first["id"] == queued["id"]
    code, _, err = cli("hooks", "redeliver", str(queued["id"]))
    assert code != EXIT_OK  # still queued
    assert cli.json("hooks", "remove", str(created["id"]))["removed"] is True
    assert cli.json("hooks", "list") == {"items": [], "next_cursor": None}
