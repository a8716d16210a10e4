"""One database, found the same way by every command, from any directory.

The commands run as real processes in different working directories, with
HOME (or XDG_DATA_HOME, or CORS_SCANNER_DATA_DIR) pointing at the test's
folder: what one command writes, the next one reads, and no command leaves a
``cors-scanner.db`` where it happened to run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import EXIT_OK, EXIT_UNAVAILABLE
from scanner.cli.database import DatabaseLocation, database_location
from scanner.settings import Settings


def _run(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CORS_SCANNER_") and k not in ("HOME", "XDG_DATA_HOME")
    }
    return subprocess.run(
        [sys.executable, "-m", "scanner", *argv],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dirs(tmp_path: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        (tmp_path / name).mkdir()
        made.append(tmp_path / name)
    return made


def test_every_command_finds_the_one_default_database_from_any_directory(tmp_path: Path) -> None:
    home, here, there = _dirs(tmp_path, "home", "here", "there")
    env = {"HOME": str(home)}
    expected = home / ".local" / "share" / "cors-scanner" / "cors-scanner.db"

    missing = _run(here, env, "endpoints", "list")
    assert missing.returncode == EXIT_UNAVAILABLE
    assert f"no database at {expected}" in missing.stderr
    assert "`cors-scanner db upgrade`" in missing.stderr
    assert "`cors-scanner serve`" in missing.stderr
    assert not expected.parent.exists()  # nothing created by a command that only reads

    upgraded = _run(here, env, "db", "upgrade")
    assert upgraded.returncode == EXIT_OK, upgraded.stderr
    assert f"(SQLite file {expected})" in upgraded.stdout
    assert expected.is_file()
    assert expected.parent.stat().st_mode & 0o777 == 0o700

    added = _run(here, env, "endpoints", "add", "https://api.acme.test/v1/me")
    assert added.returncode == EXIT_OK, added.stderr
    listed = _run(there, env, "endpoints", "list", "--format", "json")
    assert listed.returncode == EXIT_OK, listed.stderr
    assert [e["url"] for e in json.loads(listed.stdout)["items"]] == ["https://api.acme.test/v1/me"]
    current = _run(there, env, "db", "current", "--format", "json")
    assert json.loads(current.stdout)["location"] == f"SQLite file {expected}"

    for folder in (here, there):
        assert list(folder.iterdir()) == [], "a command left a database where it ran"


def test_xdg_data_home_and_the_data_dir_setting_choose_the_folder(tmp_path: Path) -> None:
    home, xdg, data, work = _dirs(tmp_path, "home", "xdg", "data", "work")
    by_xdg = _run(work, {"HOME": str(home), "XDG_DATA_HOME": str(xdg)}, "db", "upgrade")
    assert by_xdg.returncode == EXIT_OK, by_xdg.stderr
    assert (xdg / "cors-scanner" / "cors-scanner.db").is_file()

    # A relative CORS_SCANNER_DATA_DIR is taken from where the command runs, then kept absolute.
    env = {"HOME": str(home), "CORS_SCANNER_DATA_DIR": "../data"}
    by_setting = _run(work, env, "db", "upgrade")
    assert by_setting.returncode == EXIT_OK, by_setting.stderr
    assert (data / "cors-scanner.db").is_file()
    assert not (home / ".local").exists()


def test_an_explicit_sqlite_url_that_names_no_file_is_refused_not_created(tmp_path: Path) -> None:
    (work,) = _dirs(tmp_path, "work")
    url = f"sqlite+aiosqlite:///{tmp_path / 'typo.db'}"
    refused = _run(
        work, {"HOME": str(tmp_path), "CORS_SCANNER_DATABASE_URL": url}, "runs", "show", "3"
    )
    assert refused.returncode == EXIT_UNAVAILABLE
    assert (
        f"no database at {tmp_path / 'typo.db'} (from CORS_SCANNER_DATABASE_URL)" in refused.stderr
    )
    assert "does not exist" not in refused.stderr  # not "scan 3 does not exist"
    assert not (tmp_path / "typo.db").exists()


def test_db_commands_never_migrate_an_existing_file_by_themselves(tmp_path: Path) -> None:
    (work,) = _dirs(tmp_path, "work")
    path = tmp_path / "empty.db"
    path.touch()
    env = {"HOME": str(tmp_path), "CORS_SCANNER_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    shown = _run(work, env, "db", "current", "--format", "json")
    assert shown.returncode == EXIT_OK, shown.stderr
    assert json.loads(shown.stdout)["current"] is None
    checked = _run(work, env, "db", "current", "--check")
    assert checked.returncode == EXIT_UNAVAILABLE
    assert "NOT current" in checked.stdout


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        (
            {"HOME": "/home/ana"},
            "sqlite+aiosqlite:////home/ana/.local/share/cors-scanner/cors-scanner.db",
        ),
        (
            {"HOME": "/home/ana", "XDG_DATA_HOME": "/srv/xdg"},
            "sqlite+aiosqlite:////srv/xdg/cors-scanner/cors-scanner.db",
        ),
        # The XDG specification: a relative XDG_DATA_HOME is ignored.
        (
            {"HOME": "/home/ana", "XDG_DATA_HOME": "rel"},
            "sqlite+aiosqlite:////home/ana/.local/share/cors-scanner/cors-scanner.db",
        ),
        (
            {"HOME": "/home/ana", "CORS_SCANNER_DATA_DIR": "/var/lib/cors-scanner"},
            "sqlite+aiosqlite:////var/lib/cors-scanner/cors-scanner.db",
        ),
        (
            {"HOME": "/home/ana", "CORS_SCANNER_DATABASE_URL": "postgresql+asyncpg://u:pw@db/cors"},
            "postgresql+asyncpg://u:pw@db/cors",
        ),
        ({}, None),
    ],
)
def test_the_location_is_resolved_once_in_the_settings(
    environ: dict[str, str], url: str | None
) -> None:
    assert Settings.from_env(environ).database_url == url


def test_how_a_location_is_named_to_a_person() -> None:
    secret = Settings.from_env(
        {"CORS_SCANNER_DATABASE_URL": "postgresql+asyncpg://u:hunter2@db/cors"}
    )
    assert str(database_location(secret)) == "postgresql+asyncpg://u:***@db/cors"
    default = database_location(Settings.from_env({"HOME": "/home/ana"}))
    assert default == DatabaseLocation(
        "sqlite+aiosqlite:////home/ana/.local/share/cors-scanner/cors-scanner.db",
        Path("/home/ana/.local/share/cors-scanner/cors-scanner.db"),
        default=True,
    )
    assert str(default) == "SQLite file /home/ana/.local/share/cors-scanner/cors-scanner.db"


def test_without_home_the_error_says_what_to_set(tmp_path: Path) -> None:
    (work,) = _dirs(tmp_path, "work")
    done = _run(work, {}, "findings", "list")
    assert done.returncode == 2
    assert "set CORS_SCANNER_DATA_DIR or CORS_SCANNER_DATABASE_URL" in done.stderr
