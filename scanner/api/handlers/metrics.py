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
from scanner.db.metrics import fleet_facts
from scanner.db.tokens import Scope
from scanner.reports.metrics import LATENCY_BUCKETS, RUN_BUCKETS, WINDOW, render

_SUMMARY = "Prometheus metrics (text 0.0.4 or OpenMetrics), fleet-wide from the database"
_DESCRIPTION = (
    "Runs, probes, findings, regressions, work items, live workers and alert deliveries, "
    "named `cors_scanner_*`, plus the answering process's `process_*` and `python_*`. Every "
    "API process reports the same fleet-wide figures. Text format 0.0.4 unless `Accept` asks "
    "for `application/openmetrics-text`. Authentication: a `read` token, unless the server "
    "runs with `CORS_SCANNER_METRICS_PUBLIC=true`."
)
_REPLY = Reply(200, "The metrics.", Str(), media_type="text/plain")


async def _metrics(call: Call) -> web.Response:
    app = call.request.app
    async with app[DATABASE].read_session() as session, session.begin():
        facts = await fleet_facts(
            session,
            worker_stale_after=app[SETTINGS].worker_stale_after,
            run_bounds=RUN_BUCKETS,
            latency_bounds=LATENCY_BUCKETS,
            window=WINDOW,
        )
    body, content_type = render(facts, call.request.headers.get("Accept"))
    # Content-Type carries parameters (version, charset) aiohttp's content_type= would drop.
    return web.Response(body=body, headers={"Content-Type": content_type, "Vary": "Accept"})


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
