"""Tokens (admin) and the audit log over HTTP."""

from __future__ import annotations

import re
from typing import Any

from tests.api.client import Api

TOKENS = "/api/v1/tokens"


async def test_token_lifecycle(api: Api) -> None:
    created = await api.post(TOKENS, {"name": "ci pipeline", "scopes": ["read", "write"]})
    assert created.status == 201, created.text
    secret = created.body["secret"]
    token = created.body["token"]
    assert re.fullmatch(r"csk_[A-Za-z0-9_-]{43}", secret)
    assert created.headers["Location"] == f"{TOKENS}/{token['id']}"
    assert token["prefix"] == secret[:12]
    assert token["scopes"] == ["read", "write"]
    assert token["created_by"] == "admin-bot"
    assert token["active"] is True

    listed = await api.get(TOKENS)
    assert "ci pipeline" in [t["name"] for t in listed.body["items"]]
    assert secret not in listed.text  # the secret is never shown again
    assert (await api.get(f"{TOKENS}/{token['id']}")).body["name"] == "ci pipeline"

    # The new token works with its scopes, and acts under its own name.
    made = await api.post("/api/v1/endpoints", {"url": "https://a.acme.test/"}, token=secret)
    assert made.status == 201
    audit = (await api.get("/api/v1/audit")).body["items"]
    assert audit[0]["action"] == "endpoint.create"
    assert audit[0]["actor"] == "ci pipeline"

    revoked = await api.delete(f"{TOKENS}/{token['id']}")
    assert revoked.status == 200
    assert revoked.body["revoked_at"] is not None
    assert (await api.get("/api/v1/endpoints", token=secret)).status == 401
    assert (await api.delete(f"{TOKENS}/99999")).status == 404
    assert (await api.get(f"{TOKENS}/99999")).status == 404

    actions = [
        (e["action"], e["target_id"]) for e in (await api.get("/api/v1/audit")).body["items"]
    ]
    assert ("token.create", str(token["id"])) in actions
    assert ("token.revoke", str(token["id"])) in actions
    assert secret not in (await api.get("/api/v1/audit")).text


async def test_token_validation(api: Api) -> None:
    reply = await api.post(TOKENS, {"name": "", "scopes": ["root", "read", "sudo"], "ttl": 3})
    assert reply.status == 422
    assert sorted(reply.fields()) == ["name", "scopes[0]", "scopes[2]", "ttl"]
    repeated = await api.post(TOKENS, {"name": "x", "scopes": ["read", "read"]})
    assert repeated.fields() == ["scopes[1]"]
    empty = await api.post(TOKENS, {"name": "x", "scopes": []})
    assert empty.fields() == ["scopes"]
    newline = await api.post(TOKENS, {"name": "a\nb", "scopes": ["read"]})
    assert newline.fields() == ["name"]


async def test_audit_pagination(api: Api) -> None:
    for i in range(7):
        assert (
            await api.post("/api/v1/endpoints", {"url": f"https://a.acme.test/{i}"})
        ).status == 201
    first = await api.get("/api/v1/audit", params={"limit": "3"})
    assert len(first.body["items"]) == 3
    every = await api.walk("/api/v1/audit", params={"limit": "3"})
    ids = [e["id"] for e in every]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert len(every) == 7
    assert all(e["at"].endswith("Z") for e in every)
    assert every[0]["detail"] == {"method": "GET", "url": "https://a.acme.test/6"}


async def test_audit_entries_name_the_token_by_id_and_cli_is_reserved(serve_api: Any) -> None:
    api: Api = await serve_api(hook_allow_loopback=True)
    # Two tokens with one name: only the id tells them apart.
    first = (await api.post(TOKENS, {"name": "deploy", "scopes": ["admin"]})).body
    second = (await api.post(TOKENS, {"name": "deploy", "scopes": ["admin"]})).body
    for made in (first, second):
        reply = await api.post(
            "/api/v1/endpoints",
            {"url": f"https://t{made['token']['id']}.acme.test/"},
            token=made["secret"],
        )
        assert reply.status == 201
    hook = await api.post(
        "/api/v1/hooks",
        {"name": "h", "kind": "webhook", "url": "http://127.0.0.1:9/h"},
        token=second["secret"],
    )
    assert hook.status == 201
    tested = await api.post(f"/api/v1/hooks/{hook.body['id']}/test", token=second["secret"])
    assert tested.status in (200, 201, 202), tested.text
    entries = (await api.get("/api/v1/audit")).body["items"]
    by_action = [(e["action"], e["actor"], e["token_id"]) for e in entries[:4]]
    assert by_action == [
        ("hook.test", "deploy", second["token"]["id"]),
        ("hook.create", "deploy", second["token"]["id"]),
        ("endpoint.create", "deploy", second["token"]["id"]),
        ("endpoint.create", "deploy", first["token"]["id"]),
    ]
    admin_id = next(
        t["id"] for t in (await api.get(TOKENS)).body["items"] if t["name"] == "admin-bot"
    )
    created_entry = next(e for e in entries if e["action"] == "token.create")
    assert created_entry["token_id"] == admin_id

    # A token may not take a name the audit log uses for something that is not a token.
    for name in ("cli", "CLI", " cli ", "serve", "unauthenticated"):
        refused = await api.post(TOKENS, {"name": name, "scopes": ["read"]})
        assert refused.status == 422, name
        assert refused.fields() == ["name"]
        assert "reserved" in refused.text
