"""The API fixtures of ``tests/api``, for the bad-input suite.

Loopback servers (``serve_raw``, ``serve_app``) come from tests/loopback.py
through tests/conftest.py.
"""

from __future__ import annotations

from tests.api.conftest import api, serve_api  # noqa: F401 - fixtures, re-exported
