"""`cors-scanner endpoints|policies|db ...` run in-process against a real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main


class CLI:
    """Runs `cors-scanner` with CORS_SCANNER_DATABASE_URL set; returns (code, stdout, stderr)."""

    def __init__(
        self, url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ):
        self.url = url
        self.capsys = capsys
        monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", url)
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--format", "json")
        assert code == EXIT_OK, err
        return json.loads(out)


@pytest.fixture
def cli(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CLI:
    runner = CLI(database_url, capsys, monkeypatch)
    code, _, err = runner("endpoints", "list")
    assert code == EXIT_UNAVAILABLE
    if database_url.startswith("sqlite"):
        # A missing SQLite file is never created by a command that only reads or adds.
        assert "no database at" in err
        assert "cors-scanner db upgrade" in err
    else:
        # PostgreSQL is never migrated behind the operator's back.
        assert "run `cors-scanner db upgrade`" in err
    assert runner("db", "upgrade")[0] == EXIT_OK
    return runner


def test_add_list_show_remove(cli: CLI) -> None:
    code, out, _ = cli(
        "endpoints",
        "add",
        "HTTPS://API.acme.com/v1/users",
        "--method",
        "post",
        "--name",
        "Users",
        "--owner",
        "team-id",
        "--tag",
        "PII",
        "--tag",
        "identity",
    )
    assert code == EXIT_OK
    assert out.strip() == "added endpoint 1: POST https://api.acme.com/v1/users"
    cli("endpoints", "add", "https://api.acme.com/health", "--disabled")

    code, out, _ = cli("endpoints", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "METHOD", "URL", "NAME", "OWNER", "TAGS", "ENABLED"]
    assert lines[1].split() == [
        "1",
        "POST",
        "https://api.acme.com/v1/users",
        "Users",
        "team-id",
        "identity,pii",
        "yes",
    ]
    assert lines[2].split()[-1] == "no"

    listed = cli.json("endpoints", "list", "--tag", "pii")
    assert [e["url"] for e in listed["items"]] == ["https://api.acme.com/v1/users"]
    assert listed["next_cursor"] is None
    assert [e["id"] for e in cli.json("endpoints", "list", "--disabled")["items"]] == [2]
    assert [e["id"] for e in cli.json("endpoints", "list", "-q", "HEALTH")["items"]] == [2]

    shown = cli.json("endpoints", "show", "1")
    assert shown["tags"] == ["identity", "pii"]
    assert shown["policy_override"] is None
    assert shown["created_at"].endswith("Z")  # the one timestamp format (UTC, Z)

    code, out, _ = cli("endpoints", "remove", "1")
    assert (code, out.strip()) == (
        EXIT_OK,
        "removed endpoint 1: POST https://api.acme.com/v1/users",
    )
    code, _, err = cli("endpoints", "show", "1")
    assert code == EXIT_USAGE
    assert "endpoint 1 does not exist" in err


def test_paging(cli: CLI) -> None:
    for i in range(5):
        cli("endpoints", "add", f"https://a.example/{i}")
    first = cli.json("endpoints", "list", "--limit", "2")
    assert [e["id"] for e in first["items"]] == [1, 2]
    second = cli.json("endpoints", "list", "--limit", "2", "--cursor", first["next_cursor"])
    assert [e["id"] for e in second["items"]] == [3, 4]
    every = cli.json("endpoints", "list", "--limit", "2", "--all")
    assert [e["id"] for e in every["items"]] == [1, 2, 3, 4, 5]
    code, _, err = cli("endpoints", "list", "--limit", "0")
    assert code == EXIT_USAGE
    assert "--limit" in err
    code, _, err = cli("endpoints", "list", "--cursor", "forged")
    assert code == EXIT_USAGE
    assert "invalid cursor" in err


def test_input_errors_list_every_field(cli: CLI) -> None:
    code, out, err = cli("endpoints", "add", "ftp://x", "--method", "GE T", "--tag", "a b")
    assert code == EXIT_USAGE
    assert out == ""
    assert "3 invalid fields" in err
    for field in ("method:", "url:", "tags:"):
        assert field in err
    cli("endpoints", "add", "https://a.example/")
    code, _, err = cli("endpoints", "add", "https://A.example:443")
    assert code == EXIT_USAGE
    assert "already exists (endpoint 1)" in err


def test_import_dry_run_then_for_real_then_idempotent(cli: CLI, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "method,url,owner,tags,allowed_origins\n"
        "GET,https://api.acme.com/a,team-a,web,https://app.acme.com\n"
        "GET,https://user:pw@api.acme.com/b,team-b,,\n"
        "POST,https://api.acme.com/c,team-c,web|beta,\n"
    )
    code, out, err = cli("endpoints", "import", str(inventory), "--dry-run")
    assert code == EXIT_USAGE  # a row had an error
    assert "would create  GET https://api.acme.com/a" in out
    assert "2 would be created, 0 would be changed, 0 unchanged, 1 row error(s) (dry run" in out
    assert "row 3, url:" in err
    assert "user name and password" in err
    assert cli.json("endpoints", "list")["items"] == []

    code, out, _ = cli("endpoints", "import", str(inventory))
    assert code == EXIT_USAGE
    assert "2 created, 0 changed, 0 unchanged, 1 row error(s)" in out
    assert len(cli.json("endpoints", "list")["items"]) == 2
    effective = cli.json("policies", "effective", "1")
    assert effective["policy"]["allowed_origins"] == ["https://app.acme.com"]
    assert effective["sources"]["allowed_origins"] == "endpoint"

    inventory.write_text(
        "method,url,owner,tags,allowed_origins\n"
        "GET,https://api.acme.com/a,team-a,web,https://app.acme.com\n"
        "POST,https://api.acme.com/c,team-z,web|beta,\n"
    )
    report = cli.json("endpoints", "import", str(inventory))
    assert report["changed"] == [
        {"method": "POST", "url": "https://api.acme.com/c", "fields": ["owner"]}
    ]
    report = cli.json("endpoints", "import", str(inventory))
    assert report["created"] == report["changed"] == report["errors"] == []
    assert len(report["unchanged"]) == 2


def test_import_openapi_with_base_url(cli: CLI, tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nservers: [{url: /v1}]\n"
        "paths:\n  /pets/{id}:\n    get: {operationId: getPet, tags: [Pets]}\n"
    )
    code, _, err = cli("endpoints", "import", str(spec))
    assert code == EXIT_USAGE
    assert "--base-url" in err
    code, out, _ = cli("endpoints", "import", str(spec), "--base-url", "https://petstore.example")
    assert code == EXIT_OK
    assert "created  GET https://petstore.example/v1/pets/example" in out
    (pet,) = cli.json("endpoints", "list", "--tag", "pets")["items"]
    assert pet["name"] == "getPet"


def test_import_refuses_big_and_unknown_files(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.csv"
    big.write_text("url\n" + "https://a.example/\n" * 100)
    monkeypatch.setenv("CORS_SCANNER_MAX_IMPORT_BYTES", "1000")
    code, _, err = cli("endpoints", "import", str(big))
    assert code == EXIT_USAGE
    assert "over the 1,000-byte import limit" in err
    code, _, err = cli("endpoints", "import", str(tmp_path / "inventory.txt"))
    assert code == EXIT_USAGE
    assert "cannot tell the file's format" in err
    code, _, err = cli("endpoints", "import", str(tmp_path / "missing.csv"))
    assert code == EXIT_USAGE
    assert "cannot read" in err


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml"])
def test_export_round_trip(cli: CLI, tmp_path: Path, fmt: str) -> None:
    cli("endpoints", "add", "https://a.example/", "--tag", "x", "--owner", "o", "--notes", "=1+1")
    cli("endpoints", "add", "https://b.example/", "--method", "PUT", "--disabled")
    cli(
        "policies",
        "set",
        "--endpoint",
        "2",
        "--allowed-origin",
        "https://*.b.example",
        "--max-age",
        "60",
    )
    out_file = tmp_path / f"export.{fmt}"
    code, _, err = cli("endpoints", "export", "--format", fmt, "-o", str(out_file))
    assert code == EXIT_OK
    assert "exported 2 endpoint(s)" in err
    report = cli.json("endpoints", "import", str(out_file))
    assert report["created"] == report["changed"] == []
    assert len(report["unchanged"]) == 2
    code, text, _ = cli("endpoints", "export", "--format", fmt, "--disabled")
    assert "https://b.example/" in text
    assert "https://a.example/" not in text


def test_policies(cli: CLI) -> None:
    cli("endpoints", "add", "https://pay.acme.com/charge", "--tag", "payments")
    code, out, _ = cli(
        "policies",
        "set",
        "--default",
        "--allowed-origin",
        "https://app.acme.com",
        "--max-age",
        "600",
    )
    assert (code, out.strip()) == (EXIT_OK, "created policy 1 (default)")
    cli(
        "policies",
        "set",
        "--tag",
        "payments",
        "--allowed-origin",
        "https://*.acme.com",
        "--allow-credentials",
    )

    eff = cli.json("policies", "effective", "1")
    assert eff["policy"]["allowed_origins"] == ["https://*.acme.com"]
    assert eff["sources"] == {
        "allowed_origins": "tag:payments",
        "allow_credentials": "tag:payments",
        "allowed_methods": "builtin",
        "allowed_headers": "builtin",
        "exposed_headers": "builtin",
        "max_age": "default",
        "public": "builtin",
    }
    code, out, _ = cli("policies", "effective", "1")
    assert "allowed_origins    https://*.acme.com  tag:payments" in out

    listed = cli.json("policies", "list")["items"]
    assert [(p["scope"], p["tag"]) for p in listed] == [("default", None), ("tag", "payments")]
    assert cli.json("policies", "show", "2")["allow_credentials"] is True

    # `set` replaces the layer; --no-allowed-origins is "nobody", not "inherit".
    code, out, _ = cli("policies", "set", "--tag", "payments", "--no-allowed-origins")
    assert out.strip() == "replaced policy 2 (tag:payments)"
    eff = cli.json("policies", "effective", "1")
    assert eff["policy"]["allowed_origins"] == []
    assert eff["policy"]["allow_credentials"] is False

    code, _, err = cli("policies", "set", "--default", "--allowed-origin", "*")
    assert code == EXIT_USAGE
    assert "public=true" in err
    code, _, err = cli("policies", "set", "--default", "--public", "--allow-credentials")
    assert code == EXIT_USAGE
    assert "cannot also allow credentials" in err

    code, out, _ = cli("policies", "unset", "--tag", "payments")
    assert (code, out.strip()) == (EXIT_OK, "removed policy 2 (tag:payments)")
    code, _, err = cli("policies", "unset", "--tag", "payments")
    assert code == EXIT_USAGE
    assert "there is no tag:payments policy" in err
    code, _, err = cli("policies", "set", "--endpoint", "99", "--public")
    assert code == EXIT_USAGE
    assert "endpoint 99 does not exist" in err


def test_writes_are_audited(cli: CLI) -> None:
    cli("endpoints", "add", "https://a.example/")
    cli("policies", "set", "--default", "--public")
    cli("endpoints", "remove", "1")

    async def actions() -> list[tuple[str, str]]:
        from scanner.db import audit
        from scanner.db.engine import Database

        db = await Database.connect(cli.url)
        try:
            async with db.session() as s:
                page = await audit.list_audit(s, limit=10, cursor=None)
        finally:
            await db.close()
        return [(e.actor, e.action) for e in page.items]

    import asyncio

    assert asyncio.run(actions()) == [
        ("cli", "endpoint.delete"),
        ("cli", "policy.create"),
        ("cli", "endpoint.create"),
    ]


def test_db_commands(cli: CLI) -> None:
    status = cli.json("db", "current")
    assert status["is_current"]
    assert status["current"] == status["head"]
    code, out, _ = cli("db", "upgrade")
    assert code == EXIT_OK
    assert out.startswith(f"schema already at {status['head']} (")
    code, _, err = cli("db", "downgrade", "base")
    assert code == EXIT_USAGE
    assert "--yes" in err
    code, out, _ = cli("db", "downgrade", "base", "--yes")
    assert code == EXIT_OK
    assert f"from {status['head']} to nothing" in out
    code, out, _ = cli("db", "current", "--check")
    assert code == EXIT_UNAVAILABLE
    assert "NOT current" in out
    code, out, _ = cli("db", "upgrade")
    assert code == EXIT_OK
    assert f"from nothing to {status['head']}" in out


def test_unreachable_database_exits_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = CLI("postgresql+asyncpg://nobody:pw@127.0.0.1:9/none", capsys, monkeypatch)
    code, _, err = cli("endpoints", "list")
    assert code == EXIT_UNAVAILABLE
    assert "cannot reach the database at postgresql+asyncpg://nobody:***@127.0.0.1:9/none" in err


def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli = CLI(f"sqlite+aiosqlite:///{tmp_path}/x.db", capsys, monkeypatch)
    assert cli("endpoints")[0] == EXIT_USAGE
    assert cli("policies", "set", "--max-age", "5")[0] == EXIT_USAGE  # no scope
    assert cli("policies", "set", "--default", "--tag", "x")[0] == EXIT_USAGE
    assert cli("endpoints", "show", "one")[0] == EXIT_USAGE


def test_one_idna_mapping_uts46(cli: CLI, tmp_path: Path) -> None:
    # The same canonical URL as the API and the scan command give straße.de.
    added = cli.json("endpoints", "add", "https://straße.de/p", "--method", "patch")
    assert (added["method"], added["url"]) == ("patch", "https://xn--strae-oqa.de/p")
    rows = tmp_path / "rows.csv"
    rows.write_text("method,url\npatch,https://STRAßE.de/p\n", encoding="utf-8")
    report = cli.json("endpoints", "import", str(rows))
    assert report["summary"] == {"created": 0, "changed": 0, "unchanged": 1, "errors": 0}
