"""Structured logs: JSON lines off a terminal, request and run ids, no secret ever written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from scanner.api import create_app
from scanner.cli import EXIT_OK, main
from scanner.db.engine import Database
from scanner.db.tables import ApiTokenRow
from scanner.logs import (
    REDACTED,
    bind_run_id,
    configure_logging,
    current_request_id,
    log_context,
    redact,
)
from scanner.settings import Settings
from tests.api.client import api_settings, make_tokens

SECRET_TOKEN = "csk_" + "S" * 43
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = (SECRET_TOKEN, "S" * 43, WEBHOOK_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quieted = {name: logging.getLogger(name).level for name in ("alembic", "aiohttp.access")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, old in quieted.items():
        logging.getLogger(name).setLevel(old)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def configured(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()  # not a terminal: "auto" means JSON
    configure_logging(Settings(**overrides), stream=stream)
    return stream


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_when_not_a_terminal_with_extra_fields() -> None:
    stream = configured()

    logging.getLogger("scanner.test").info("probed %d endpoints", 3, extra={"endpoints": 3})
    logging.getLogger("scanner.test").debug("below the level")

    [line] = lines(stream)
    assert line["level"] == "info"
    assert line["logger"] == "scanner.test"
    assert line["message"] == "probed 3 endpoints"
    assert line["endpoints"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert "request_id" not in line
    assert "run_id" not in line


@pytest.mark.usefixtures("restore_logging")
def test_plain_lines_on_a_terminal_and_json_when_asked() -> None:
    terminal = Terminal()
    configure_logging(Settings(log_level="debug"), stream=terminal)
    with log_context(request_id="req-1", run_id=42):
        logging.getLogger("scanner.test").debug("hello")
    text = terminal.getvalue()
    assert re.fullmatch(r"\S+Z DEBUG scanner\.test \[request=req-1 run=42\]: hello\n", text), text

    forced = Terminal()
    configure_logging(Settings(log_format="json"), stream=forced)
    logging.getLogger("scanner.test").warning("as json")
    assert json.loads(forced.getvalue())["message"] == "as json"
    assert terminal.getvalue() == text, "the previous handler was replaced, not kept"


@pytest.mark.usefixtures("restore_logging")
async def test_run_ids_follow_tasks_started_inside_the_scan() -> None:
    stream = configured()
    log = logging.getLogger("scanner.test")

    async def probe(n: int) -> None:
        await asyncio.sleep(0)
        log.info("probe %d", n)

    async def run(run_id: int) -> None:
        bind_run_id(run_id)  # at the top of the task executing the run
        async with asyncio.TaskGroup() as group:
            for n in range(2):
                group.create_task(probe(n))

    await asyncio.gather(run(7), run(8))
    log.info("outside")

    got = lines(stream)
    by_message = {}
    for line in got:
        by_message.setdefault(line["message"], set()).add(line.get("run_id"))
    assert by_message == {"probe 0": {"7", "8"}, "probe 1": {"7", "8"}, "outside": {None}}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer " + SECRET_TOKEN, "Authorization: "),
        ("{'Authorization': 'Bearer abc.def', 'Accept': '*/*'}", "'Accept': '*/*'"),
        ("sent bearer " + SECRET_TOKEN + " to the API", "to the API"),
        ("token " + SECRET_TOKEN + " created", "created"),
        ("hook secret " + WEBHOOK_SECRET, "hook secret whsec_"),
        ("Cookie: session=hunter2; theme=dark", "Cookie: "),
        ("set-cookie=sid=hunter2", "set-cookie="),
        ("Proxy-Authorization: Basic aHVudGVyMg==", "Proxy-Authorization: "),
        ("connecting to postgresql+asyncpg://scanner:hunter2@db:5432/cors", "@db:5432/cors"),
        # Every form a header takes: stored probe headers are JSON pairs, aiohttp's raw
        # headers are (bytes) tuples, and JSON inside a parameter string is escaped.
        ('[["Cookie", "sid=hunter2"], ["Vary", "Origin"]]', '["Vary", "Origin"]'),
        ("(('Authorization', 'Bearer abc.def'), ('Accept', '*/*'))", "('Accept', '*/*')"),
        ("((b'Set-Cookie', b'sid=hunter2; Path=/'), (b'Vary', b'Origin'))", "b'Vary'"),
        ('{"name": "Cookie", "value": "sid=hunter2"}', '"name": "Cookie", "value": '),
        ('\'[[\\"X-Api-Key\\", \\"hunter2\\"]]\'', "X-Api-Key"),
        ('{\\"cookie\\": \\"sid=hunter2\\"}', "cookie"),
    ],
)
def test_redact_removes_secret_shapes(text: str, kept: str) -> None:
    cleaned = redact(text)

    assert REDACTED in cleaned
    assert kept in cleaned
    for secret in (*SECRETS, "abc.def", "aHVudGVyMg=="):
        assert secret not in cleaned


def test_prose_that_names_a_header_is_left_alone() -> None:
    text = "the cookie, the authorization and the session are fine"
    assert redact(text) == text


async def test_database_errors_name_the_statement_but_never_its_parameters(
    database: Database,
) -> None:
    row = {
        "name": "x",
        "token_prefix": "csk_1234",
        "token_hash": "h" * 64,
        "scopes": ["read"],
        "created_at": datetime.now(UTC),
        "created_by": "first",
    }
    cookie = "sid=" + "hunter2"  # not in the source line a traceback shows
    async with database.session() as session, session.begin():
        await session.execute(insert(ApiTokenRow), [row])
    with pytest.raises(IntegrityError) as caught:
        async with database.session() as session, session.begin():
            await session.execute(insert(ApiTokenRow), [{**row, "created_by": cookie}])

    text = str(caught.value)
    assert "INSERT INTO" in text  # the statement is still named
    assert "hunter2" not in text
    assert "hunter2" not in "".join(traceback.format_exception(caught.value))


@pytest.mark.usefixtures("restore_logging")
def test_secrets_in_arguments_and_tracebacks_never_reach_the_log() -> None:
    stream = configured()
    log = logging.getLogger("scanner.test")

    log.info("headers: %r", {"Authorization": f"Bearer {SECRET_TOKEN}"})
    log.warning("hook %s uses %s", "h1", WEBHOOK_SECRET)
    try:
        raise ValueError(f"bad URL https://user:hunter2@hooks.example/ with {SECRET_TOKEN}")
    except ValueError:
        log.exception("delivery failed")

    output = stream.getvalue()
    for secret in SECRETS:
        assert secret not in output
    got = lines(stream)
    assert len(got) == 3
    assert "ValueError" in got[2]["exc"]
    assert REDACTED in got[2]["exc"]


@pytest.fixture
async def logged_api(database: Database, restore_logging: None) -> AsyncIterator[tuple[Any, Any]]:
    stream = configured()
    tokens = await make_tokens(database)
    app = create_app(api_settings(database), database=database)

    async def talkative(request: web.Request) -> web.Response:
        logging.getLogger("scanner.api").info(
            "handling with headers %r in request %s", dict(request.headers), current_request_id()
        )
        raise RuntimeError(f"boom with {request.headers.get('Authorization')}")

    app.router.add_get("/talkative", talkative)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, (stream, tokens)
    finally:
        await client.close()


async def test_api_requests_carry_a_request_id_in_logs_and_the_response(
    logged_api: tuple[Any, Any],
) -> None:
    client, (stream, tokens) = logged_api
    auth = {"Authorization": f"Bearer {tokens['read']}"}

    async with client.get("/api/v1/endpoints", headers=auth) as listed:
        assert listed.status == 200
        generated = listed.headers["X-Request-Id"]
    async with client.get("/api/v1/endpoints", headers={**auth, "X-Request-Id": "ci-42.a"}) as r:
        assert r.headers["X-Request-Id"] == "ci-42.a"  # a sane incoming id is kept
    async with client.get("/healthz", headers={"X-Request-Id": "<script>" + "x" * 200}) as r:
        replaced = r.headers["X-Request-Id"]
    async with client.get("/talkative", headers=auth) as failed:
        assert failed.status == 500
        failed_id = failed.headers["X-Request-Id"]

    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert len({generated, replaced, failed_id, "ci-42.a"}) == 4
    got = lines(stream)
    access = [line for line in got if line["logger"] == "scanner.api.access"]
    # Health checks are logged at debug only (the level here is info).
    assert [(a["request_id"], a["path"], a["status"]) for a in access] == [
        (generated, "/api/v1/endpoints", 200),
        ("ci-42.a", "/api/v1/endpoints", 200),
        (failed_id, "/talkative", 500),
    ]
    assert replaced not in stream.getvalue()
    assert all(isinstance(a["duration_ms"], float) for a in access)
    # Lines logged while handling the failing request: the handler's and the 500's.
    during = [line for line in got if line.get("request_id") == failed_id]
    assert {line["logger"] for line in during} == {"scanner.api", "scanner.api.access"}
    assert any(line["message"].startswith("unhandled error in GET /talkative") for line in during)
    assert any("exc" in line and "RuntimeError" in line["exc"] for line in during)
    output = stream.getvalue()
    for secret in tokens.values():
        assert secret not in output, "a bearer token reached the log"
    assert output.count(REDACTED) >= 2


@pytest.mark.usefixtures("restore_logging")
def test_the_command_line_configures_logging_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("CORS_SCANNER_LOG_FORMAT", "json")

    assert main(["db", "upgrade"]) == EXIT_OK
    assert main(["db", "current"]) == EXIT_OK
    logging.getLogger("scanner.test").warning("after the command")

    ours = [h for h in logging.getLogger().handlers if h.get_name() == "cors-scanner"]
    assert len(ours) == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert json.loads(err_lines[-1])["message"] == "after the command"


def test_log_settings_are_validated() -> None:
    from scanner.errors import ConfigError

    assert Settings.from_env({"CORS_SCANNER_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="CORS_SCANNER_LOG_FORMAT"):
        Settings.from_env({"CORS_SCANNER_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="CORS_SCANNER_LOG_LEVEL"):
        Settings.from_env({"CORS_SCANNER_LOG_LEVEL": "loud"})
