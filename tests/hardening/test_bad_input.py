"""Bad input to the API and the importers: a clear 4xx problem each time, nothing stored half-way.

Every case counts the rows of every table before and after: a refused
request must leave the database exactly as it was (no endpoint, no tag, no
audit entry). SQL-looking strings are not bad input: they are stored and
returned verbatim, and harm nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from scanner.cli import EXIT_OK, EXIT_USAGE, main
from scanner.db.engine import Database
from tests.api.client import Api, read

ENDPOINTS = "/api/v1/endpoints"
IMPORT = "/api/v1/endpoints/import"
POLICIES = "/api/v1/policies"
SCANS = "/api/v1/scans"
JSON_TYPE = "application/json"


async def row_counts(database: Database) -> dict[str, int]:
    """Rows per table, every table the schema has."""
    async with database.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        counts = {}
        for name in sorted(names):
            if name != "alembic_version":
                counts[name] = (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar()
    return counts


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    body: bytes
    content_type: str
    status: int
    code: str
    detail: str | None = None  # a substring of the problem's detail
    fields: tuple[str, ...] = ()  # for 422: the fields named
    method: str = "POST"


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


DEEP_ARRAY = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 300 + b"1" + b"}" * 300

CASES = [
    # -- oversized (test settings: 64 KiB for JSON bodies) --
    Case(
        "oversized JSON body",
        ENDPOINTS,
        j({"url": "https://a.test/", "notes": "n" * 70_000}),
        JSON_TYPE,
        413,
        "body_too_large",
        "the limit is 65536",
    ),
    # -- deep JSON --
    Case("deep JSON array", ENDPOINTS, DEEP_ARRAY, JSON_TYPE, 400, "invalid_json", "nests"),
    Case("deep JSON object", ENDPOINTS, DEEP_OBJECT, JSON_TYPE, 400, "invalid_json", "nests"),
    Case("deep JSON to scans", SCANS, DEEP_ARRAY, JSON_TYPE, 400, "invalid_json", "nests"),
    # -- invalid UTF-8 --
    Case(
        "invalid UTF-8 byte",
        ENDPOINTS,
        b'{"url": "https://a.test/\xff"}',
        JSON_TYPE,
        400,
        "invalid_encoding",
        "not UTF-8",
    ),
    Case(
        "encoded surrogate",
        ENDPOINTS,
        b'{"url": "https://a.test/", "name": "\xed\xa0\x80"}',
        JSON_TYPE,
        400,
        "invalid_encoding",
    ),
    Case(
        "overlong encoding",
        POLICIES,
        b'{"scope": "global", "allowed_origins": ["https://a\xc0\xaf.test"]}',
        JSON_TYPE,
        400,
        "invalid_encoding",
    ),
    # -- URLs with credentials or CR/LF --
    Case(
        "URL with credentials",
        ENDPOINTS,
        j({"url": "https://admin:hunter2@a.test/"}),
        JSON_TYPE,
        422,
        "validation_failed",
        fields=("url",),
    ),
    Case(
        "URL with a user only",
        ENDPOINTS,
        j({"url": "https://admin@a.test/"}),
        JSON_TYPE,
        422,
        "validation_failed",
        fields=("url",),
    ),
    Case(
        "URL with CRLF",
        ENDPOINTS,
        j({"url": "https://a.test/\r\nX-Injected: 1"}),
        JSON_TYPE,
        422,
        "validation_failed",
        fields=("url",),
    ),
    Case(
        "URL with an encoded-looking raw LF in the host",
        ENDPOINTS,
        j({"url": "https://a.test\n.evil/"}),
        JSON_TYPE,
        422,
        "validation_failed",
        fields=("url",),
    ),
    Case(
        "method with CRLF",
        ENDPOINTS,
        j({"url": "https://a.test/", "method": "GET\r\nX-Injected: 1"}),
        JSON_TYPE,
        422,
        "validation_failed",
        fields=("method",),
    ),
    # -- duplicate keys and other non-JSON --
    Case(
        "duplicate keys",
        ENDPOINTS,
        b'{"url": "https://a.test/", "url": "https://b.test/"}',
        JSON_TYPE,
        400,
        "invalid_json",
        "duplicate key 'url'",
    ),
    Case(
        "nested duplicate keys",
        POLICIES,
        b'{"scope": "global", "allowed_origins": [], "scope": "tag"}',
        JSON_TYPE,
        400,
        "invalid_json",
        "duplicate key",
    ),
    Case("NaN", ENDPOINTS, b'{"url": "https://a.test/", "x": NaN}', JSON_TYPE, 400, "invalid_json"),
    Case(
        "two documents",
        ENDPOINTS,
        b'{"url": "https://a.test/"}{"url": "https://b.test/"}',
        JSON_TYPE,
        400,
        "invalid_json",
    ),
    # -- the import route: file-level refusals store none of the rows --
    Case(
        "import: invalid UTF-8 in CSV",
        IMPORT,
        b"url\nhttps://a.test/\nhttps://b.test/\xff\n",
        "text/csv",
        400,
        "invalid_input",
        "not UTF-8",
    ),
    Case(
        "import: deep JSON",
        IMPORT,
        b'[{"url": "https://a.test/"}, ' + DEEP_ARRAY + b"]",
        JSON_TYPE,
        400,
        "invalid_input",
        "nested",
    ),
    Case(
        "import: duplicate keys after good rows",
        IMPORT,
        b'[{"url": "https://a.test/"}, {"url": "https://b.test/", "url": "https://c.test/"}]',
        JSON_TYPE,
        400,
        "invalid_input",
        "duplicate key 'url'",
    ),
    Case(
        "import: YAML duplicate keys",
        IMPORT,
        b"- url: https://a.test/\n- url: https://b.test/\n  url: https://c.test/\n",
        "application/yaml",
        400,
        "invalid_input",
        "duplicate key 'url'",
    ),
    Case(
        "import: YAML alias bomb",
        IMPORT,
        b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        b"d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
        "application/yaml",
        400,
        "invalid_input",
        "aliases",
    ),
    Case(
        "import: YAML Python object tag",
        IMPORT,
        b"- url: !!python/object/apply:os.system ['true']\n",
        "application/yaml",
        400,
        "invalid_input",
    ),
]


@pytest.fixture
async def api_and_db(api: Api) -> tuple[Api, Database]:
    return api, api.database


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_a_4xx_problem_and_stores_nothing(
    api_and_db: tuple[Api, Database], case: Case
) -> None:
    api, database = api_and_db
    before = await row_counts(database)

    reply = await api.call(
        case.method, case.path, data=case.body, headers={"Content-Type": case.content_type}
    )

    assert reply.status == case.status, reply.text
    problem = reply.problem  # asserts application/problem+json
    assert problem["status"] == case.status
    assert problem["code"] == case.code
    assert problem["type"].endswith(f"#problem-{case.code}")
    assert problem["title"]
    assert problem["detail"]
    if case.detail is not None:
        assert case.detail in problem["detail"], problem["detail"]
    if case.fields:
        assert sorted(reply.fields()) == sorted(case.fields), problem
    assert await row_counts(database) == before


async def test_a_streamed_body_over_the_limit_is_cut_off(api_and_db: tuple[Api, Database]) -> None:
    # No Content-Length to refuse up front: the server must stop reading at the limit.
    api, database = api_and_db
    before = await row_counts(database)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"url": "https://a.test/", "notes": "'
        for _ in range(200):
            yield b"n" * 1024
        yield b'"}'

    async with api.client.post(
        ENDPOINTS,
        data=chunks(),
        headers={"Content-Type": JSON_TYPE, "Authorization": f"Bearer {api.tokens['admin']}"},
    ) as response:
        reply = await read(response)

    assert reply.status == 413
    assert reply.problem["code"] == "body_too_large"
    assert await row_counts(database) == before


async def test_an_oversized_import_is_refused_whole(serve_api: Any) -> None:
    api: Api = await serve_api(max_import_bytes=2000)
    before = await row_counts(api.database)
    rows = "url\n" + "".join(f"https://h{i}.acme.test/\n" for i in range(200))

    reply = await api.call("POST", IMPORT, data=rows, headers={"Content-Type": "text/csv"})

    assert reply.status == 413
    assert reply.problem["code"] == "body_too_large"
    assert await row_counts(api.database) == before


async def test_a_refused_change_leaves_the_stored_row_as_it_was(
    api_and_db: tuple[Api, Database],
) -> None:
    api, database = api_and_db
    created = await api.post(ENDPOINTS, {"url": "https://a.test/", "name": "before"})
    assert created.status == 201, created.text
    path = f"{ENDPOINTS}/{created.body['id']}"
    before = await row_counts(database)

    for body in (
        {"name": "after", "url": "https://u:p@a.test/"},
        {"name": "after", "url": "https://a.test/\r\nX: 1"},
    ):
        reply = await api.patch(path, body)
        assert reply.status == 422, reply.text
        assert reply.fields() == ["url"]
    duplicate = await api.call(
        "PATCH",
        path,
        data=b'{"name": "after", "name": "again"}',
        headers={"Content-Type": JSON_TYPE},
    )
    assert duplicate.status == 400

    assert (await api.get(path)).body["name"] == "before"
    assert await row_counts(database) == before


SQLISH = {
    "name": "Robert'); DROP TABLE endpoints;--",
    "owner": "' OR '1'='1",
    "notes": '1; SELECT * FROM api_tokens; -- "quoted" \\ backslash %_ wildcards',
}


async def test_sql_looking_strings_are_stored_verbatim_and_harmless(
    api_and_db: tuple[Api, Database],
) -> None:
    api, database = api_and_db
    plain = await api.post(ENDPOINTS, {"url": "https://plain.test/", "name": "plain"})
    assert plain.status == 201
    url = "https://a.test/search?q=1'%20OR%20'1'='1"

    created = await api.post(ENDPOINTS, {"url": url, **SQLISH})

    assert created.status == 201, created.text
    shown = (await api.get(f"{ENDPOINTS}/{created.body['id']}")).body
    assert shown["url"] == url
    for key, value in SQLISH.items():
        assert shown[key] == value
    # The tables are all still there, and searches match text literally.
    counts = await row_counts(database)
    assert counts["endpoints"] == 2
    assert counts["api_tokens"] == 3
    names = [e["name"] for e in await api.walk(ENDPOINTS, params={"q": "drop table"})]
    assert names == [SQLISH["name"]]
    assert await api.walk(ENDPOINTS, params={"q": "' OR 1=1 --"}) == []
    # LIKE wildcards in a search are literal characters, not patterns.
    for wildcard in ("_", "p%n", "a_test", "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%x"):
        found = await api.walk(ENDPOINTS, params={"q": wildcard})
        assert found == [], wildcard
    owners = await api.walk(ENDPOINTS, params={"owner": SQLISH["owner"]})
    assert [e["name"] for e in owners] == [SQLISH["name"]]


# -- the importers on the command line ------------------------------------------


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def cli_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", database_url)
    assert _run("db", "upgrade") == EXIT_OK
    capsys.readouterr()
    return database_url


def _count_endpoints(capsys: pytest.CaptureFixture[str]) -> int:
    assert _run("endpoints", "export", "--format", "json") == EXIT_OK
    exported = json.loads(capsys.readouterr().out)
    rows = exported["endpoints"] if isinstance(exported, dict) else exported
    return len(rows)


FILE_CASES = [
    ("bad.csv", b"url\nhttps://a.test/\nhttps://b.test/\xff\n", "not UTF-8"),
    ("deep.json", b'[{"url": "https://a.test/"}, ' + DEEP_ARRAY + b"]", "nested"),
    (
        "dupes.json",
        b'[{"url": "https://a.test/"}, {"url": "https://b.test/", "url": "https://c.test/"}]',
        "duplicate key 'url'",
    ),
    ("dupes.yaml", b"- url: https://a.test/\n- url: https://b.test/\n  url: x\n", "duplicate key"),
]


@pytest.mark.parametrize(("name", "content", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_cli_import_refuses_bad_files_whole(
    cli_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    code = _run("endpoints", "import", str(path))

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("cors-scanner: ")
    assert message in err
    assert "Traceback" not in err
    assert _count_endpoints(capsys) == 0


def test_cli_import_reports_credential_and_crlf_urls_per_row_and_stores_only_good_rows(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "url,name\n"
        "https://good.test/,good\n"
        "https://admin:hunter2@creds.test/,creds\n"
        '"https://crlf.test/\r\nX-Injected: 1",crlf\n',
        newline="",
    )

    _run("endpoints", "import", str(path))

    out, err = capsys.readouterr()
    report = out + err
    assert "row 3, url" in report
    assert "remove the user name and password" in report
    assert "row 4, url" in report
    assert "control characters" in report
    assert _run("endpoints", "export", "--format", "json") == EXIT_OK
    exported = json.loads(capsys.readouterr().out)
    rows = exported["endpoints"] if isinstance(exported, dict) else exported
    assert [r["url"] for r in rows] == ["https://good.test/"]
