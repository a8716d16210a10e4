"""How the dashboard finds the application's database, settings and worker.

The application that mounts the dashboard (``scanner.api.create_app``) owns
those objects and their keys; it hands the keys to :func:`setup_dashboard
<scanner.dashboard.setup_dashboard>`, which keeps them here, so the dashboard
never imports the API it sits beside.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from scanner.db.engine import Database
from scanner.settings import Settings
from scanner.worker import Worker


@dataclass(frozen=True, slots=True)
class Wiring:
    """The application's keys of what the dashboard uses."""

    database: web.AppKey[Database]
    settings: web.AppKey[Settings]
    worker: web.AppKey[Worker]


WIRING = web.AppKey("dashboard_wiring", Wiring)


def database(app: web.Application) -> Database:
    return app[app[WIRING].database]


def settings(app: web.Application) -> Settings:
    return app[app[WIRING].settings]


def wake_worker(app: web.Application) -> None:
    """Tell the embedded worker, if the app runs one, that there is work (a new run)."""
    key = app[WIRING].worker
    if key in app:
        app[key].wake()
