"""Findings, triage, history and regressions through the REST API (real server, real runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.client import Api
from tests.regressions.harness import Runs, serve_target, stored_runs

RULE = "reflect_any_origin_credentials"


@pytest.fixture
async def runs(api: Api) -> AsyncIterator[Runs]:
    async with serve_target() as target, stored_runs(api.database, target) as made:
        yield made


async def _critical(api: Api) -> dict[str, Any]:
    reply = await api.get("/api/v1/findings", params={"rule_id": RULE})
    assert reply.status == 200, reply.text
    [finding] = reply.body["items"]
    assert isinstance(finding, dict)
    return finding


async def test_list_filter_and_show(api: Api, runs: Runs) -> None:
    await runs.run("allowlist")
    second = await runs.run("reflect")
    finding = await _critical(api)
    assert finding["status"] == "new"
    assert finding["severity"] == "critical"
    assert finding["verified"] is True
    assert finding["triage"] is None

    async def ids(**params: str) -> set[int]:
        return {f["id"] for f in await api.walk("/api/v1/findings", params=params)}

    assert finding["id"] in await ids(severity="critical", status="new,open")
    assert finding["id"] in await ids(tag="pci", owner="payments-team")
    assert finding["id"] in await ids(endpoint_id=str(runs.endpoint_id))
    assert finding["id"] in await ids(run_id=str(second.run_id))
    assert finding["id"] not in await ids(run_id=str(runs.outcomes[0].run_id))
    assert finding["id"] not in await ids(tag="internal")
    assert finding["id"] not in await ids(status="resolved")
    # "open" is what a user means: every live finding, brand-new ones included,
    # as /metrics counts them; explicit statuses stay available.
    assert finding["id"] in await ids(status="open", severity="high")
    assert finding["id"] in await ids(status="new")
    assert finding["id"] not in await ids(status="reopened")
    seen = runs.now.isoformat()
    assert finding["id"] in await ids(first_seen_after=seen)
    assert finding["id"] not in await ids(last_seen_before=seen)

    shown = await api.get(f"/api/v1/findings/{finding['id']}", token="read")
    assert shown.status == 200
    assert shown.body == finding
    assert (await api.get("/api/v1/findings/999999")).status == 404
    bad = await api.get("/api/v1/findings", params={"status": "bogus", "since": "x"})
    assert bad.status == 422
    assert {"query.status", "query.since"} <= set(bad.fields())


async def test_triage_is_kept_in_history_and_survives_a_rescan(api: Api, runs: Runs) -> None:
    await runs.run("allowlist")
    await runs.run("reflect")
    finding = await _critical(api)
    path = f"/api/v1/findings/{finding['id']}"

    assert (await api.patch(path, {"status": "suppressed"}, token="write")).status == 422
    assert (
        await api.patch(path, {"status": "accepted", "reason": "x"}, token="read")
    ).status == 403
    missing_expiry = await api.patch(path, {"status": "accepted", "reason": "tracked in JIRA-1"})
    assert missing_expiry.status == 422
    assert "until" in missing_expiry.fields()
    stale = await api.patch(path, {"status": "suppressed", "reason": "fp", "version": 99})
    assert stale.status == 409

    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    reply = await api.patch(
        path, {"status": "accepted", "reason": "tracked in JIRA-1", "until": until}, token="write"
    )
    assert reply.status == 200, reply.text
    assert reply.body["status"] == "suppressed"
    assert reply.body["triage"]["kind"] == "accepted"
    assert reply.body["triage"]["by"] == "write-bot"  # the token's name

    await runs.run("reflect")
    assert (await _critical(api))["status"] == "suppressed"

    reopened = await api.patch(path, {"status": "open", "reason": "fixed the plan"})
    assert reopened.status == 200
    assert reopened.body["status"] == "open"
    assert reopened.body["triage"] is None

    history = await api.get(f"{path}/history")
    assert history.status == 200
    kinds = [e["kind"] for e in history.body["events"]]
    assert kinds == ["finding.new", "finding.suppressed", "finding.unsuppressed"]
    assert history.body["events"][1]["after"]["triage"]["reason"] == "tracked in JIRA-1"

    audit = await api.get("/api/v1/audit")
    assert any(e["action"] == "finding.accepted" for e in audit.body["items"])


async def test_regressions_since_and_per_run(api: Api, runs: Runs) -> None:
    await runs.run("allowlist")
    before = datetime.now(UTC) - timedelta(days=400)
    run = await runs.run("reflect")
    reply = await api.get("/api/v1/regressions", params={"since": before.isoformat()})
    assert reply.status == 200
    # One root cause, one regression: the finding, with the header drift inside.
    kinds = [e["kind"] for e in reply.body["items"]]
    assert kinds == ["finding.new"]
    assert all(e["is_regression"] for e in reply.body["items"])
    new = next(e for e in reply.body["items"] if e["rule_id"] == RULE)
    assert new["before"]["probes"]
    assert new["after"]["changed_total"] >= 1
    assert new["after"]["severity"] == "critical"
    assert new["finding_id"] == (await _critical(api))["id"]

    later = (runs.now + timedelta(days=1)).isoformat()
    assert (await api.get("/api/v1/regressions", params={"since": later})).body["items"] == []

    per_run = await api.get(f"/api/v1/scans/{run.run_id}/regressions")
    assert per_run.status == 200
    assert {e["id"] for e in per_run.body["items"]} == set(run.regression_ids)
    baseline = await api.get(f"/api/v1/scans/{runs.outcomes[0].run_id}/regressions")
    assert baseline.body["items"] == []

    # The fix is a resolution, never a regression.
    fix = await runs.run("allowlist")
    assert fix.regression_ids == ()
    assert (await api.get(f"/api/v1/scans/{fix.run_id}/regressions")).body["items"] == []
    every = await api.get(f"/api/v1/scans/{fix.run_id}/regressions", params={"all": "true"})
    assert [e["kind"] for e in every.body["items"]] == ["finding.resolved"]
    assert every.body["items"][0]["after"]["changed_total"] >= 1
    assert (await api.get("/api/v1/scans/999999/regressions")).status == 404


async def test_openapi_documents_the_new_routes(api: Api) -> None:
    doc = (await api.get("/api/v1/openapi.json", token=None)).body
    for path in (
        "/api/v1/findings",
        "/api/v1/findings/{id}",
        "/api/v1/findings/{id}/history",
        "/api/v1/regressions",
        "/api/v1/scans/{id}/regressions",
    ):
        assert path in doc["paths"], path
    assert "patch" in doc["paths"]["/api/v1/findings/{id}"]
