"""Fixtures of the dashboard tests; they live in harness.py (see its docstring)."""

from tests.dashboard.harness import browser, dash, http  # noqa: F401 - fixtures
