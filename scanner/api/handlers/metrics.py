"""``GET /metrics``: Prometheus metrics of the whole fleet, computed from the database.

A scrape needs a token with the ``read`` scope (Prometheus sends it with
``authorization: {credentials_file: …}`` in its scrape config), unless
``CORS_SCANNER_METRICS_PUBLIC=true``: then the route is unauthenticated, for
scrapers that cannot send one (put it behind the network boundary instead).
The figures say how many findings are open and which rules regress, which is
why the default is to ask for a token.
"""

from __future__ import annotations

from aiohttp import web

from scanner.api.keys import DATABASE, SETTINGS
from scanner.api.schemas import Call, Operation, Reply, Str, operation
from scanner.db.tokens import Scope
from scanner.reports.metrics import CONTENT_TYPE, MetricsSettings, render_metrics

_SUMMARY = "Prometheus metrics (text format 0.0.4), fleet-wide from the database"
_DESCRIPTION = (
    "Runs, probes, findings, regressions, work items, live workers and alert deliveries, "
    "named `cors_scanner_*`. Every API process reports the same fleet-wide figures. "
    "Authentication: a `read` token, unless the server runs with "
    "`CORS_SCANNER_METRICS_PUBLIC=true`."
)
_REPLY = Reply(200, "The metrics.", Str(), media_type="text/plain")


async def _metrics(call: Call) -> web.Response:
    app = call.request.app
    settings = MetricsSettings(worker_stale_after=app[SETTINGS].worker_stale_after)
    async with app[DATABASE].session() as session, session.begin():
        text = await render_metrics(session, settings)
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


# The route table registers ``metrics``; ``add_routes`` swaps in ``public_metrics``
# when the settings make the endpoint public, so the OpenAPI document says which.
metrics = operation(
    Operation(
        operation_id="metrics",
        summary=_SUMMARY,
        tag="system",
        scope=Scope.READ,
        description=_DESCRIPTION,
        replies=(_REPLY,),
    )
)(_metrics)

public_metrics = operation(
    Operation(
        operation_id="metrics",
        summary=_SUMMARY,
        tag="system",
        scope=None,
        description=_DESCRIPTION,
        replies=(_REPLY,),
    )
)(_metrics)
