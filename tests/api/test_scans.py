"""Scans through the API, end to end against real misbehaving targets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from scanner.db import runs as run_store
from scanner.db.tables import WorkItemRow
from scanner.engine import Engine, Target
from tests.api.client import Api
from tests.api.targets import serve_target

SCANS = "/api/v1/scans"


@pytest.fixture
async def target() -> AsyncIterator[str]:
    async with serve_target() as base:
        yield base


async def add(api: Api, url: str, **fields: Any) -> int:
    reply = await api.post("/api/v1/endpoints", {"url": url, **fields})
    assert reply.status == 201, reply.text
    return int(reply.body["id"])


async def wait_final(api: Api, scan_id: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        reply = await api.get(f"{SCANS}/{scan_id}")
        assert reply.status == 200, reply.text
        if reply.body["status"] in ("completed", "failed", "cancelled"):
            return reply.body
        assert loop.time() < deadline, f"scan still {reply.body['status']}"
        await asyncio.sleep(0.05)


async def test_scan_finds_a_reflected_origin_with_credentials(api: Api, target: str) -> None:
    bad = await add(api, f"{target}/reflect-credentials", tags=["payments"])
    good = await add(api, f"{target}/closed", tags=["payments"])

    started = await api.post(SCANS, {"tag": "payments"}, token="write")
    assert started.status == 202, started.text
    assert started.headers["Location"] == f"{SCANS}/{started.body['id']}"
    assert started.body["status"] in ("queued", "running")
    assert started.body["requested_by"] == "write-bot"
    assert started.body["selection"] == {"tag": "payments"}

    scan = await wait_final(api, started.body["id"])
    assert scan["status"] == "completed", scan
    assert scan["error"] is None
    assert scan["progress"]["endpoints_total"] == 2
    assert scan["progress"]["endpoints_done"] == 2
    assert scan["progress"]["probes"] > 0
    assert scan["progress"]["probe_errors"] == 0
    assert scan["findings"]["by_severity"]["critical"] >= 1
    assert scan["findings"]["total"] == sum(scan["findings"]["by_severity"].values())
    assert scan["started_at"] is not None
    assert scan["finished_at"] >= scan["started_at"]

    findings = await api.walk(f"{SCANS}/{scan['id']}/findings", token="read")
    assert len(findings) == scan["findings"]["total"]
    critical = [f for f in findings if f["rule_id"] == "reflect_any_origin_credentials"]
    assert len(critical) == 1
    finding = critical[0]
    assert finding["severity"] == "critical"
    assert finding["endpoint_id"] == bad
    assert finding["credentialed"] is True
    assert finding["remediation"]["generic"]
    assert finding["evidence"], "a finding carries the exchanges that prove it"
    proof = finding["evidence"][0]
    sent_origin = dict((n.lower(), v) for n, v in proof["request"]["headers"])["origin"]
    echoed = dict((n.lower(), v) for n, v in proof["response"]["headers"])
    assert echoed["access-control-allow-origin"] == sent_origin
    assert not [f for f in findings if f["endpoint_id"] == good and f["severity"] != "info"]

    # Filters: minimum severity, rule, endpoint.
    crit = await api.get(f"{SCANS}/{scan['id']}/findings", params={"severity": "critical"})
    assert crit.body["items"]
    assert {f["severity"] for f in crit.body["items"]} == {"critical"}
    by_rule = await api.get(
        f"{SCANS}/{scan['id']}/findings", params={"rule_id": "reflect_any_origin_credentials"}
    )
    assert [f["id"] for f in by_rule.body["items"]] == [finding["id"]]
    of_good = await api.get(f"{SCANS}/{scan['id']}/findings", params={"endpoint_id": str(good)})
    assert all(f["endpoint_id"] == good for f in of_good.body["items"])
    at_least_high = await api.get(f"{SCANS}/{scan['id']}/findings", params={"severity": "high"})
    assert {f["severity"] for f in at_least_high.body["items"]} <= {"high", "critical"}

    # Probes: every exchange, filterable by endpoint, paginated.
    probes = await api.walk(f"{SCANS}/{scan['id']}/probes", params={"limit": "3"})
    assert len(probes) == scan["progress"]["probes"]
    assert len({p["id"] for p in probes}) == len(probes)
    assert {p["endpoint_id"] for p in probes} == {bad, good}
    only_bad = await api.walk(
        f"{SCANS}/{scan['id']}/probes", params={"endpoint_id": str(bad), "limit": "100"}
    )
    assert only_bad
    assert all(p["endpoint_id"] == bad for p in only_bad)
    assert any(p["kind"] == "preflight" for p in only_bad)
    assert all(p["status"] is not None and p["error"] is None for p in only_bad)

    listed = await api.get(SCANS, token="read")
    assert [s["id"] for s in listed.body["items"]] == [scan["id"]]
    assert listed.body["items"][0]["findings"] == scan["findings"]
    done = await api.get(SCANS, params={"status": "completed"})
    assert [s["id"] for s in done.body["items"]] == [scan["id"]]
    running = await api.get(SCANS, params={"status": "running"})
    assert running.body["items"] == []


async def test_scan_selection(api: Api, target: str) -> None:
    a = await add(api, f"{target}/closed?a", owner="team-a")
    b = await add(api, f"{target}/closed?b", owner="team-b")
    off = await add(api, f"{target}/closed?off", enabled=False)

    by_owner = await api.post(SCANS, {"owner": "team-b"})
    assert by_owner.status == 202
    assert (await wait_final(api, by_owner.body["id"]))["progress"]["endpoints_total"] == 1

    everything = await api.post(SCANS, {})
    assert everything.body["progress"]["endpoints_total"] == 2  # enabled only
    await wait_final(api, everything.body["id"])

    empty_body = await api.call("POST", SCANS)  # no body at all means {}
    assert empty_body.status == 202, empty_body.text
    await wait_final(api, empty_body.body["id"])

    chosen = await api.post(SCANS, {"endpoint_ids": [a, off]})
    assert chosen.status == 202
    finished = await wait_final(api, chosen.body["id"])
    assert finished["progress"]["endpoints_done"] == 2  # a chosen disabled endpoint is scanned
    probes = await api.walk(f"{SCANS}/{chosen.body['id']}/probes", params={"limit": "100"})
    assert {p["endpoint_id"] for p in probes} == {a, off}
    assert b not in {p["endpoint_id"] for p in probes}


async def test_scan_selection_errors(api: Api, target: str) -> None:
    a = await add(api, f"{target}/closed")
    missing = await api.post(SCANS, {"endpoint_ids": [a, 999, 998]})
    assert missing.status == 422
    assert missing.fields() == ["endpoint_ids[1]", "endpoint_ids[2]"]

    both = await api.post(SCANS, {"endpoint_ids": [a], "tag": "x"})
    assert both.status == 422
    assert both.fields() == ["endpoint_ids"]

    nothing = await api.post(SCANS, {"tag": "no-such-tag"})
    assert nothing.status == 422
    assert "no enabled endpoint" in nothing.problem["errors"][0]["message"]

    bad = await api.post(SCANS, {"endpoint_ids": [], "tag": 5, "owner": "", "extra": True})
    assert bad.status == 422
    assert sorted(bad.fields()) == ["endpoint_ids", "extra", "owner", "tag"]

    denied = await api.post(SCANS, {}, token="read")
    assert denied.status == 403
    assert (await api.get(SCANS, token="read")).body["items"] == []


async def test_cancel_a_running_scan(api: Api, target: str) -> None:
    await add(api, f"{target}/slow")
    started = await api.post(SCANS, {})
    scan_id = started.body["id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await api.get(f"{SCANS}/{scan_id}")).body["status"] != "running":
        assert loop.time() < deadline
        await asyncio.sleep(0.02)

    cancelled = await api.post(f"{SCANS}/{scan_id}/cancel", token="write")
    assert cancelled.status == 200, cancelled.text
    assert cancelled.body["status"] == "cancelled"
    assert cancelled.body["error"] == "cancelled by write-bot"
    assert cancelled.body["finished_at"] is not None

    again = await api.post(f"{SCANS}/{scan_id}/cancel")
    assert again.status == 409
    assert again.problem["code"] == "conflict"

    audit = await api.get("/api/v1/audit")
    actions = [(e["action"], e["actor"]) for e in audit.body["items"]]
    assert ("scan.cancel", "write-bot") in actions
    assert ("scan.create", "admin-bot") in actions


async def test_unknown_scan(api: Api) -> None:
    for path in (f"{SCANS}/41", f"{SCANS}/41/findings", f"{SCANS}/41/probes"):
        reply = await api.get(path)
        assert reply.status == 404, path
        assert reply.problem["code"] == "not_found"
    assert (await api.post(f"{SCANS}/41/cancel")).status == 404
    assert (await api.get(f"{SCANS}/abc")).status == 404
    assert (await api.get(f"{SCANS}/99999999999")).status == 404


async def test_shutdown_releases_running_work(serve_api: Any, target: str) -> None:
    api = await serve_api()
    await add(api, f"{target}/slow")
    started = await api.post(SCANS, {})
    scan_id = started.body["id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await api.get(f"{SCANS}/{scan_id}")).body["status"] != "running":
        assert loop.time() < deadline
        await asyncio.sleep(0.02)

    await api.client.close()  # the app's cleanup: the worker releases what it holds

    async with api.database.session() as session, session.begin():
        scan = await run_store.get_run(session, scan_id)
        items = (
            await session.execute(
                select(WorkItemRow.status, WorkItemRow.attempts).where(
                    WorkItemRow.run_id == scan_id
                )
            )
        ).all()
    # Not lost, not failed: the run resumes when a worker comes back.
    assert scan.status.value == "running"
    assert scan.finished_at is None
    assert [(s, a) for s, a in items] == [("queued", 0)]


class _BrokenOnOne(Engine):
    """A real engine with a bug that hits one endpoint: the scan must go on without it."""

    async def assess(self, target: Target, *, token: str | None = None) -> Any:
        if target.endpoint.url.endswith("?broken"):
            raise RuntimeError("bug in a rule")
        return await super().assess(target, token=token)


async def test_one_bad_endpoint_never_stops_the_scan(serve_api: Any, target: str) -> None:
    api = await serve_api(engine_factory=_BrokenOnOne)
    ok = [await add(api, f"{target}/closed?{i}") for i in range(3)]
    broken = await add(api, f"{target}/closed?broken")
    started = await api.post(SCANS, {})
    scan = await wait_final(api, started.body["id"])
    assert scan["status"] == "completed", scan
    assert scan["progress"]["endpoints_done"] == 4
    probes = await api.walk(f"{SCANS}/{scan['id']}/probes", params={"limit": "100"})
    assert {p["endpoint_id"] for p in probes} == set(ok)
    async with api.database.session() as session, session.begin():
        saved = await run_store.list_run_endpoint_ids(session, scan["id"])
    assert saved == {*ok, broken}


async def test_a_crash_marks_the_scan_failed_with_the_error(
    serve_api: Any, target: str, tmp_path: Any
) -> None:
    # A CA bundle that is not a certificate: the prober refuses to start, our fault.
    bad_bundle = tmp_path / "ca.pem"
    bad_bundle.write_text("not a certificate\n")
    api = await serve_api(ca_bundle=str(bad_bundle))
    await add(api, f"{target}/closed")
    started = await api.post(SCANS, {})
    scan = await wait_final(api, started.body["id"])
    assert scan["status"] == "failed"
    assert scan["error"].startswith("ConfigError: ")
    assert "ca.pem" in scan["error"]
    assert scan["finished_at"] is not None
