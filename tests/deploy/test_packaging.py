"""The wheel is what users install: it must carry every package and the migrations.

``pip install cors-scanner`` followed by ``cors-scanner db upgrade`` has to work
from any directory, with no file copied by hand. The wheel is built here from
the tree (offline, with the dev extra's setuptools), unpacked, and run from a
directory that is not the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_package_under_scanner_is_declared() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "scanner").rglob("__init__.py")
    }
    declared = _declared_packages()
    assert found - declared == set(), "new packages must be listed in pyproject.toml"
    assert declared - found == {"scanner.migrations", "scanner.migrations.versions"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    [built] = out.glob("cors_scanner-*.whl")
    return built


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scanner/migrations/env.py" in names
    assert "scanner/migrations/script.py.mako" in names
    revisions = {p.name for p in (ROOT / "migrations" / "versions").glob("0*.py")}
    assert revisions, "the tree has migrations"
    assert {f"scanner/migrations/versions/{r}" for r in revisions} <= names


def test_the_wheel_carries_the_dashboards_templates_and_assets(wheel: Path) -> None:
    # The dashboard works offline: every template, the stylesheet, the script and
    # the logo are inside the package, nothing is fetched from a CDN.
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "scanner" / "dashboard"
    shipped = {
        f"scanner/dashboard/{p.relative_to(package).as_posix()}"
        for folder in ("templates", "static")
        for p in (package / folder).rglob("*")
        if p.is_file()
    }
    assert {
        "scanner/dashboard/templates/base.html",
        "scanner/dashboard/static/dashboard.css",
    } <= shipped
    assert shipped <= names, sorted(shipped - names)


def test_an_installed_wheel_migrates_a_database_from_any_directory(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # ahead of the editable checkout
        "CORS_SCANNER_DATABASE_URL": f"sqlite+aiosqlite:///{elsewhere / 'fresh.db'}",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scanner", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import scanner.db.engine as e; print(e.MIGRATIONS_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == site / "scanner" / "migrations"
    upgraded = cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    current = cli("db", "current", "--check")  # exit 4 unless the schema is at the head
    assert current.returncode == 0, current.stdout + current.stderr
    assert "up to date" in current.stdout
