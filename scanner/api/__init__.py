"""The REST API (aiohttp): ``create_app(settings)`` builds it; ``cors-scanner serve`` runs it."""

from __future__ import annotations

from scanner.api.app import create_app

__all__ = ["create_app"]
