"""docs/dashboard.md shows the browser test's screenshots, and states the CSP the server sends."""

from __future__ import annotations

import re
from pathlib import Path

from scanner.dashboard.security import CONTENT_SECURITY_POLICY

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = (DOCS / "dashboard.md").read_text()
# The names test_in_chromium.py gives screenshot(): keep this list in step with it.
SHOTS = {
    "login",
    "overview",
    "findings",
    "finding",
    "endpoints",
    "endpoint",
    "run",
    "regressions",
    "hook",
}


def test_every_screenshot_is_shown_and_every_image_exists() -> None:
    shown = set(re.findall(r"!\[[^\]]*\]\(dashboard-([a-z-]+)\.png\)", PAGE))
    assert shown == SHOTS
    for name in SHOTS:
        assert (DOCS / f"dashboard-{name}.png").stat().st_size > 10_000, name


def test_the_documented_csp_is_the_one_sent() -> None:
    assert CONTENT_SECURITY_POLICY in PAGE
