"""The inventory over HTTP: CRUD, conflicts, filters, pagination, effective policy, audit."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.client import Api

ENDPOINTS = "/api/v1/endpoints"


async def create(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    reply = await api.post(ENDPOINTS, {"url": url, **fields}, token="write")
    assert reply.status == 201, reply.text
    return dict(reply.body)


async def test_create_read_update_delete(api: Api) -> None:
    created = await api.post(
        ENDPOINTS,
        {
            "method": "post",
            "url": "HTTPS://API.Acme.test:443/v1/orders",
            "name": "Create order",
            "owner": "payments",
            "tags": ["Payments", "pci"],
            "notes": "behind the gateway",
        },
    )
    assert created.status == 201, created.text
    endpoint = created.body
    assert created.headers["Location"] == f"{ENDPOINTS}/{endpoint['id']}"
    assert endpoint["method"] == "POST"
    assert endpoint["url"] == "https://api.acme.test/v1/orders"
    assert endpoint["tags"] == ["payments", "pci"]
    assert endpoint["enabled"] is True
    assert endpoint["created_at"].endswith("Z")

    fetched = await api.get(f"{ENDPOINTS}/{endpoint['id']}", token="read")
    assert fetched.status == 200
    assert fetched.body == endpoint

    patched = await api.patch(
        f"{ENDPOINTS}/{endpoint['id']}", {"enabled": False, "tags": ["checkout"], "notes": None}
    )
    assert patched.status == 200, patched.text
    assert patched.body["enabled"] is False
    assert patched.body["tags"] == ["checkout"]
    assert patched.body["notes"] is None
    assert patched.body["name"] == "Create order"  # untouched fields stay
    assert patched.body["updated_at"] >= endpoint["updated_at"]

    bad_patch = await api.patch(
        f"{ENDPOINTS}/{endpoint['id']}", {"url": "nope", "enabled": "no", "x": 1}
    )
    assert bad_patch.status == 422
    assert sorted(bad_patch.fields()) == ["enabled", "url", "x"]

    deleted = await api.delete(f"{ENDPOINTS}/{endpoint['id']}")
    assert deleted.status == 204
    assert deleted.text == ""
    assert (await api.get(f"{ENDPOINTS}/{endpoint['id']}")).status == 404
    assert (await api.delete(f"{ENDPOINTS}/{endpoint['id']}")).status == 404
    assert (await api.patch(f"{ENDPOINTS}/{endpoint['id']}", {"enabled": True})).status == 404

    audit = (await api.get("/api/v1/audit")).body["items"]
    trail = [(e["action"], e["actor"], e["target_id"]) for e in reversed(audit)]
    eid = str(endpoint["id"])
    assert trail == [
        ("endpoint.create", "admin-bot", eid),
        ("endpoint.update", "admin-bot", eid),
        ("endpoint.delete", "admin-bot", eid),
    ]
    assert audit[1]["detail"]["changes"]["enabled"] is False


async def test_duplicates_conflict(api: Api) -> None:
    first = await create(api, "https://api.acme.test/v1/users")
    again = await api.post(ENDPOINTS, {"url": "https://API.acme.test:443/v1/users"})
    assert again.status == 409
    assert again.problem["code"] == "conflict"
    other_method = await api.post(ENDPOINTS, {"url": first["url"], "method": "DELETE"})
    assert other_method.status == 201
    clash = await api.patch(f"{ENDPOINTS}/{other_method.body['id']}", {"method": "GET"})
    assert clash.status == 409


async def test_filters(api: Api) -> None:
    a = await create(
        api, "https://a.acme.test/users", owner="team-a", tags=["public"], name="Users"
    )
    b = await create(api, "https://b.acme.test/orders", owner="team-b", tags=["public", "pci"])
    c = await create(api, "https://c.acme.test/admin", owner="team-a", enabled=False)

    async def ids(**params: str) -> list[int]:
        reply = await api.get(ENDPOINTS, params=params)
        assert reply.status == 200, reply.text
        return [e["id"] for e in reply.body["items"]]

    assert await ids() == [a["id"], b["id"], c["id"]]
    assert await ids(tag="public") == [a["id"], b["id"]]
    assert await ids(tag="pci") == [b["id"]]
    assert await ids(owner="team-a") == [a["id"], c["id"]]
    assert await ids(enabled="false") == [c["id"]]
    assert await ids(enabled="true", owner="team-a") == [a["id"]]
    assert await ids(q="ORDERS") == [b["id"]]
    assert await ids(q="users") == [a["id"]]  # name or URL
    assert await ids(q="%") == []  # LIKE wildcards are literal
    assert await ids(tag="nothing") == []


async def test_pagination_walks_everything_once(serve_api: Any) -> None:
    api = await serve_api(page_size=4, max_page_size=10)
    created = [(await create(api, f"https://api.acme.test/items/{i}"))["id"] for i in range(11)]

    first = await api.get(ENDPOINTS)
    assert len(first.body["items"]) == 4  # the server's default page size
    assert first.body["next"].startswith(f"{ENDPOINTS}?")
    assert "cursor=" in first.body["next"]

    seen = await api.walk(ENDPOINTS, params={"limit": "3", "q": "items"})
    assert [e["id"] for e in seen] == created

    # The next link keeps the filters.
    page = await api.get(ENDPOINTS, params={"limit": "1", "q": "items/1"})
    assert "q=items" in page.body["next"]
    rest = await api.walk(page.body["next"])
    assert {e["url"].rsplit("/", 1)[-1] for e in page.body["items"] + rest} == {"1", "10"}

    # Rows inserted while walking appear once, nothing is skipped or repeated.
    walked: list[int] = []
    url: str | None = f"{ENDPOINTS}?limit=5"
    extra = 0
    while url is not None:
        reply = await api.get(url)
        walked.extend(e["id"] for e in reply.body["items"])
        url = reply.body["next"]
        if extra < 2:
            created.append((await create(api, f"https://api.acme.test/late/{extra}"))["id"])
            extra += 1
    assert walked == created

    too_big = await api.get(ENDPOINTS, params={"limit": "11"})
    assert too_big.status == 422
    assert too_big.problem["errors"][0]["message"] == "must be at most 10"


async def test_effective_policy_names_each_source(api: Api) -> None:
    endpoint = await create(api, "https://api.acme.test/v1/me", tags=["spa"])
    default = await api.post(
        "/api/v1/policies",
        {"scope": "default", "allowed_origins": ["https://www.acme.test"], "max_age": 600},
    )
    assert default.status == 201, default.text
    tag = await api.post(
        "/api/v1/policies",
        {"scope": "tag", "tag": "spa", "allowed_origins": ["https://app.acme.test"]},
    )
    assert tag.status == 201, tag.text
    own = await api.post(
        "/api/v1/policies",
        {"scope": "endpoint", "endpoint_id": endpoint["id"], "allow_credentials": True},
    )
    assert own.status == 201, own.text

    reply = await api.get(f"{ENDPOINTS}/{endpoint['id']}/policy", token="read")
    assert reply.status == 200, reply.text
    effective = reply.body
    assert effective["endpoint_id"] == endpoint["id"]
    assert effective["policy"]["allowed_origins"] == ["https://app.acme.test"]
    assert effective["policy"]["allow_credentials"] is True
    assert effective["policy"]["max_age"] == 600
    assert effective["sources"]["allowed_origins"] == "tag:spa"
    assert effective["sources"]["allow_credentials"] == "endpoint"
    assert effective["sources"]["max_age"] == "default"
    assert effective["sources"]["public"] == "builtin"
    assert (await api.get(f"{ENDPOINTS}/999/policy")).status == 404


async def test_concurrent_creates_of_one_endpoint_give_one_row(api: Api) -> None:
    body = {"url": "https://api.acme.test/race"}
    replies = await asyncio.gather(*(api.post(ENDPOINTS, body) for _ in range(5)))
    assert sorted(r.status for r in replies) == [201, 409, 409, 409, 409]


async def test_methods_are_kept_as_fetch_sends_them(api: Api) -> None:
    upper = await create(api, "https://a.acme.test/", method="PATCH")
    lower = await create(api, "https://a.acme.test/", method="patch")  # another request
    get = await create(api, "https://a.acme.test/", method="get")
    assert (upper["method"], lower["method"], get["method"]) == ("PATCH", "patch", "GET")
    again = await api.post(ENDPOINTS, {"url": "https://a.acme.test/", "method": "Get"})
    assert again.status == 409
    bad = await api.post(ENDPOINTS, {"url": "https://a.acme.test/", "method": "trace"})
    assert bad.status == 422
    assert bad.fields() == ["method"]


async def test_one_idna_mapping_uts46(api: Api) -> None:
    # Browsers map straße.de with UTS 46 (xn--strae-oqa.de); IDNA 2003 would give
    # strasse.de, a different host. Both paths in (API here, CLI and imports
    # elsewhere) store the browser's.
    endpoint = await create(api, "https://straße.de/p")
    assert endpoint["url"] == "https://xn--strae-oqa.de/p"
    other = await create(api, "https://strasse.de/p")
    assert other["id"] != endpoint["id"]
    layer = await api.post(
        "/api/v1/policies", {"scope": "default", "allowed_origins": ["https://straße.de"]}
    )
    assert layer.status == 201, layer.text
    assert layer.body["allowed_origins"] == ["https://xn--strae-oqa.de"]
