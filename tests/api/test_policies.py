"""Policy layers over HTTP: default, tag, endpoint; validation names every bad field."""

from __future__ import annotations

from tests.api.client import Api

POLICIES = "/api/v1/policies"


async def test_policy_lifecycle(api: Api) -> None:
    created = await api.post(
        POLICIES,
        {
            "scope": "tag",
            "tag": "spa",
            "allowed_origins": ["https://APP.acme.test:443", "https://*.acme.test"],
            "allowed_methods": ["get", "PUT"],
            "allowed_headers": ["Content-Type"],
            "max_age": 600,
        },
        token="write",
    )
    assert created.status == 201, created.text
    layer = created.body
    assert created.headers["Location"] == f"{POLICIES}/{layer['id']}"
    assert layer["scope"] == "tag"
    assert layer["tag"] == "spa"
    assert layer["endpoint_id"] is None
    assert layer["allowed_origins"] == ["https://app.acme.test", "https://*.acme.test"]
    assert layer["allowed_methods"] == ["GET", "PUT"]
    assert layer["allowed_headers"] == ["content-type"]
    assert layer["allow_credentials"] is None  # inherits

    replaced = await api.post(POLICIES, {"scope": "tag", "tag": "spa", "public": True})
    assert replaced.status == 200  # the scope's layer existed: replaced, same id
    assert replaced.body["id"] == layer["id"]
    assert replaced.body["public"] is True
    assert replaced.body["allowed_origins"] is None

    patched = await api.patch(f"{POLICIES}/{layer['id']}", {"max_age": 60, "public": None})
    assert patched.status == 200, patched.text
    assert patched.body["max_age"] == 60
    assert patched.body["public"] is None

    listed = await api.get(POLICIES, token="read")
    assert [p["id"] for p in listed.body["items"]] == [layer["id"]]
    assert listed.body["next"] is None
    assert (await api.get(f"{POLICIES}/{layer['id']}", token="read")).body == patched.body

    assert (await api.delete(f"{POLICIES}/{layer['id']}")).status == 204
    assert (await api.get(f"{POLICIES}/{layer['id']}")).status == 404
    assert (await api.delete(f"{POLICIES}/{layer['id']}")).status == 404

    actions = [e["action"] for e in (await api.get("/api/v1/audit")).body["items"]]
    assert actions == ["policy.delete", "policy.update", "policy.replace", "policy.create"]


async def test_policy_validation_names_every_field(api: Api) -> None:
    reply = await api.post(
        POLICIES,
        {
            "scope": "tag",
            "allowed_origins": ["*", "https://ok.acme.test", "https://*acme.test", "not an origin"],
            "allowed_methods": ["GET POST"],
            "max_age": -1,
            "public": "yes",
            "colour": "red",
        },
    )
    assert reply.status == 422
    fields = reply.fields()
    assert "tag" in fields  # required for the tag scope
    assert {"allowed_origins[0]", "allowed_origins[2]", "allowed_origins[3]"} <= set(fields)
    assert "allowed_origins[1]" not in fields
    assert {"allowed_methods[0]", "max_age", "public", "colour"} <= set(fields)
    star = next(e for e in reply.problem["errors"] if e["field"] == "allowed_origins[0]")
    assert "public=true" in star["message"]


async def test_policy_scope_rules(api: Api) -> None:
    no_endpoint = await api.post(POLICIES, {"scope": "endpoint"})
    assert no_endpoint.status == 422
    assert no_endpoint.fields() == ["endpoint_id"]
    stray = await api.post(POLICIES, {"scope": "default", "tag": "x", "endpoint_id": 3})
    assert sorted(stray.fields()) == ["endpoint_id", "tag"]
    missing = await api.post(POLICIES, {"scope": "endpoint", "endpoint_id": 12345})
    assert missing.status == 404
    bad_scope = await api.post(POLICIES, {"scope": "org"})
    assert bad_scope.fields() == ["scope"]
    contradiction = await api.post(
        POLICIES, {"scope": "default", "public": True, "allow_credentials": True}
    )
    assert contradiction.status == 422
    assert contradiction.fields() == ["public"]
    denied = await api.post(POLICIES, {"scope": "default"}, token="read")
    assert denied.status == 403


async def test_endpoint_override_goes_with_its_endpoint(api: Api) -> None:
    endpoint = (await api.post("/api/v1/endpoints", {"url": "https://a.acme.test/"})).body
    layer = await api.post(
        POLICIES, {"scope": "endpoint", "endpoint_id": endpoint["id"], "public": True}
    )
    assert layer.status == 201
    assert (await api.delete(f"/api/v1/endpoints/{endpoint['id']}")).status == 204
    assert (await api.get(f"{POLICIES}/{layer.body['id']}")).status == 404
