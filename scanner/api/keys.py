"""The application's typed keys: what handlers find on ``request.app``, set by ``create_app``."""

from __future__ import annotations

from aiohttp import web

from scanner.db.engine import Database
from scanner.settings import Settings
from scanner.usecases import Context
from scanner.worker import Worker

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
CONTEXT = web.AppKey("context", Context)  # what the use cases run against
WORKER = web.AppKey("worker", Worker)  # the embedded worker, when the app runs one
OPENAPI_CACHE = web.AppKey("openapi_cache", dict)
