"""The whole route table, on one screen. Each handler carries its Operation (scope, schemas)."""

from __future__ import annotations

from aiohttp import web

from scanner.api.handlers import audit, inventory, policies, scans, system, tokens
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
    # scans
    ("GET", f"{API}/scans", scans.list_scans),
    ("POST", f"{API}/scans", scans.create_scan),
    ("GET", f"{API}/scans/{{id}}", scans.get_scan),
    ("GET", f"{API}/scans/{{id}}/findings", scans.list_findings),
    ("GET", f"{API}/scans/{{id}}/probes", scans.list_probes),
    ("POST", f"{API}/scans/{{id}}/cancel", scans.cancel_scan),
    # tokens and audit (admin)
    ("GET", f"{API}/tokens", tokens.list_tokens),
    ("POST", f"{API}/tokens", tokens.create_token),
    ("GET", f"{API}/tokens/{{id}}", tokens.get_token),
    ("DELETE", f"{API}/tokens/{{id}}", tokens.revoke_token),
    ("GET", f"{API}/audit", audit.list_audit),
)


def add_routes(app: web.Application) -> None:
    """Register every route of ROUTES on ``app``.

    Ids match digits only, so ``/endpoints/import`` is never read as an id and
    a wrong method there is a 405 naming the right one.
    """
    for method, path, handler in ROUTES:
        app.router.add_route(method, path.replace("{id}", "{id:[0-9]+}"), handler)
