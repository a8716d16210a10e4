"""The REST API (aiohttp): ``create_app(settings)`` builds it; ``cors-scanner serve`` runs it.

Where things live: the app, its middlewares and typed keys (``app``,
``keys``, ``auth``, ``cors``, ``problems``, ``ratelimit``, ``requestid``),
the route table (``routes``), request validation and the OpenAPI document
(``schemas``, ``paging``, ``openapi``), and one thin handler module per
resource (``handlers``): each parses a request, calls one use case
(``scanner.usecases``) and renders the result with ``scanner.shapes``.
Nothing outside the API and the CLI that serves it imports this package.
"""

from __future__ import annotations

from scanner.api.app import create_app

__all__ = ["create_app"]
