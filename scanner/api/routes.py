"""The whole route table, on one screen. Each handler carries its Operation (scope, schemas)."""

from __future__ import annotations

from aiohttp import web

from scanner.api.handlers import (
    audit,
    findings,
    hooks,
    inventory,
    metrics,
    policies,
    reports,
    runs,
    schedules,
    system,
    tokens,
    workers,
)
from scanner.api.keys import SETTINGS
from scanner.api.schemas import AiohttpHandler

API = "/api/v1"

ROUTES: tuple[tuple[str, str, AiohttpHandler], ...] = (
    # system (no authentication)
    ("GET", "/healthz", system.healthz),
    ("GET", "/readyz", system.readyz),
    ("GET", f"{API}/openapi.json", system.openapi_json),
    ("GET", f"{API}/docs", system.docs),
    # inventory
    ("GET", f"{API}/endpoints", inventory.list_endpoints),
    ("POST", f"{API}/endpoints", inventory.create_endpoint),
    ("POST", f"{API}/endpoints/import", inventory.import_endpoints),
    ("GET", f"{API}/endpoints/{{id}}", inventory.get_endpoint),
    ("PATCH", f"{API}/endpoints/{{id}}", inventory.update_endpoint),
    ("DELETE", f"{API}/endpoints/{{id}}", inventory.delete_endpoint),
    ("GET", f"{API}/endpoints/{{id}}/policy", inventory.get_effective_policy),
    # policies
    ("GET", f"{API}/policies", policies.list_policies),
    ("POST", f"{API}/policies", policies.put_policy),
    ("GET", f"{API}/policies/{{id}}", policies.get_policy),
    ("PATCH", f"{API}/policies/{{id}}", policies.patch_policy),
    ("DELETE", f"{API}/policies/{{id}}", policies.delete_policy),
    # runs (the REST paths keep their published name, /scans)
    ("GET", f"{API}/scans", runs.list_runs),
    ("POST", f"{API}/scans", runs.create_run),
    ("GET", f"{API}/scans/{{id}}", runs.get_run),
    ("GET", f"{API}/scans/{{id}}/findings", runs.list_findings),
    ("GET", f"{API}/scans/{{id}}/probes", runs.list_probes),
    ("POST", f"{API}/scans/{{id}}/cancel", runs.cancel_run),
    # schedules and workers (issue 4)
    ("GET", f"{API}/schedules", schedules.list_schedules),
    ("POST", f"{API}/schedules", schedules.create_schedule),
    ("GET", f"{API}/schedules/{{id}}", schedules.get_schedule),
    ("PATCH", f"{API}/schedules/{{id}}", schedules.update_schedule),
    ("DELETE", f"{API}/schedules/{{id}}", schedules.delete_schedule),
    ("GET", f"{API}/workers", workers.list_workers),
    # tokens and audit (admin)
    ("GET", f"{API}/tokens", tokens.list_tokens),
    ("POST", f"{API}/tokens", tokens.create_token),
    ("GET", f"{API}/tokens/{{id}}", tokens.get_token),
    ("DELETE", f"{API}/tokens/{{id}}", tokens.revoke_token),
    ("GET", f"{API}/audit", audit.list_audit),
    # findings and regressions (issue 5)
    ("GET", f"{API}/findings", findings.list_findings),
    ("GET", f"{API}/findings/{{id}}", findings.get_finding),
    ("PATCH", f"{API}/findings/{{id}}", findings.triage_finding),
    ("GET", f"{API}/findings/{{id}}/history", findings.finding_history),
    ("GET", f"{API}/regressions", findings.list_regressions),
    ("GET", f"{API}/scans/{{id}}/regressions", findings.list_run_regressions),
    # alert hooks (issue 5)
    ("GET", f"{API}/hooks", hooks.list_hooks),
    ("POST", f"{API}/hooks", hooks.create_hook),
    ("GET", f"{API}/hooks/{{id}}", hooks.get_hook),
    ("PATCH", f"{API}/hooks/{{id}}", hooks.update_hook),
    ("DELETE", f"{API}/hooks/{{id}}", hooks.delete_hook),
    ("POST", f"{API}/hooks/{{id}}/rotate-secret", hooks.rotate_secret),
    ("GET", f"{API}/hooks/{{id}}/deliveries", hooks.list_deliveries),
    ("POST", f"{API}/hooks/{{id}}/test", hooks.test_hook),
    ("POST", f"{API}/deliveries/{{id}}/redeliver", hooks.redeliver),
    # metrics and reports of stored runs (issue 6)
    ("GET", "/metrics", metrics.metrics),
    ("GET", f"{API}/scans/{{id}}/report", reports.run_report),
)


def add_routes(app: web.Application) -> None:
    """Register every route of ROUTES on ``app``.

    Ids match digits only, so ``/endpoints/import`` is never read as an id and
    a wrong method there is a 405 naming the right one.
    """
    public_metrics = app[SETTINGS].metrics_public
    for method, path, handler in ROUTES:
        if handler is metrics.metrics and public_metrics:
            handler = metrics.public_metrics  # CORS_SCANNER_METRICS_PUBLIC: no token needed
        app.router.add_route(method, path.replace("{id}", "{id:[0-9]+}"), handler)
