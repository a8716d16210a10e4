"""Drive Debian's headless Chromium against scripted loopback servers.

Two aiohttp servers on 127.0.0.1, cross-origin by port: the *page* server
serves one HTML page that runs ``fetch()`` once per case and POSTs each
outcome back to it (same origin, so no scraping of the DOM), and the *API*
server answers every case's preflight and actual request with the header
lines the case scripts, recording what the browser sent and what it got.
Chromium's console (``--enable-logging=stderr``) gives the exact blocking
message for each URL.

One Chromium launch runs every case: a cold start costs seconds, a case
milliseconds. Cases with ``opaque`` set run inside a sandboxed ``srcdoc``
iframe (no ``allow-same-origin``), whose requests carry ``Origin: null``.
Cases with ``raw_actual`` are answered byte for byte by a third, raw-socket
server (heads no aiohttp server would write: ``Name : value``, bare CRs, a
NUL...), and cases with ``same_origin`` are fetched from the page's own
server (a same-origin request, no CORS).

The harness is exposed as the session fixture ``chromium_run``; the test
module defines the cases (anything matching :class:`ScriptedCase`) and reads
the :class:`CaseOutcome` values it returns, so nothing imports this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import pytest
from aiohttp import web
from multidict import CIMultiDict

CHROMIUM = Path("/usr/bin/chromium")
# Placeholders in scripted header values: the Origin the browser sent, and the
# same in upper case (a server that matches origins case-insensitively).
ORIGIN_PLACEHOLDER = "$ORIGIN"
UPPER_ORIGIN_PLACEHOLDER = "$UPPER_ORIGIN"
# Generous: a cold Chromium start takes 1-3 s and ~150 loopback fetches about 1 s;
# two busy shared cores can make both several times slower.
SUITE_TIMEOUT_S = 90.0

HeaderLines = tuple[tuple[str, str], ...]
_KNOWN_STATUSES = frozenset(s.value for s in HTTPStatus)


class ScriptedResponse(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def lines(self) -> HeaderLines: ...


class ScriptedCase(Protocol):
    """What the harness needs from a case (the test module's dataclass)."""

    @property
    def name(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def request_headers(self) -> HeaderLines: ...
    @property
    def credentials(self) -> bool: ...
    @property
    def opaque(self) -> bool: ...
    @property
    def read_headers(self) -> tuple[str, ...]: ...
    @property
    def preflight_response(self) -> ScriptedResponse | None: ...
    @property
    def actual_response(self) -> ScriptedResponse: ...
    @property
    def raw_actual(self) -> bytes | None: ...
    @property
    def raw_preflight(self) -> bytes | None: ...
    @property
    def same_origin(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request the API server received, and the response lines it sent."""

    method: str
    request_headers: HeaderLines
    status: int
    response_headers: HeaderLines


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as the browser got it, or would have got it had it asked."""

    status: int
    lines: HeaderLines


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What happened to one case in Chromium.

    ``readable``: the page's ``fetch()`` resolved (the response was exposed);
    ``seen_headers``: ``response.headers.get(name)`` for each name the case asked
    to read (None = not visible); ``console``: the CORS console line, if any,
    from "Access to fetch at" on; ``preflight``/``actual``: the exchanges the API
    server saw, None when the browser never sent that request;
    ``preflight_response``/``actual_response``: what the server sent (every line,
    Date and Server included) or, for a request never sent, the scripted lines
    with the origin filled in.
    """

    url: str
    origin: str
    readable: bool
    status: int | None
    error: str | None
    seen_headers: Mapping[str, str | None]
    console: str | None
    preflight: Exchange | None
    actual: Exchange | None
    preflight_response: Reply | None
    actual_response: Reply
    raw_sent: bytes | None = None  # what the raw server wrote, for raw cases
    raw_preflight_sent: bytes | None = None
    raw_request: bytes | None = None  # the request head the raw server received
    raw_preflight_request: bytes | None = None


def _reply(sent: Exchange | None, scripted: ScriptedResponse | None, origin: str) -> Reply | None:
    if sent is not None:
        return Reply(sent.status, sent.response_headers)
    if scripted is None:
        return None
    return Reply(scripted.status, tuple((n, fill_origin(v, origin)) for n, v in scripted.lines))


@dataclass
class _Recorder:
    cases: dict[str, ScriptedCase]
    preflights: dict[str, Exchange] = field(default_factory=dict)
    actuals: dict[str, Exchange] = field(default_factory=dict)
    results: dict[str, dict[str, object]] = field(default_factory=dict)
    raw_sent: dict[str, bytes] = field(default_factory=dict)
    raw_requests: dict[str, bytes] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _serve_raw(
    recorder: _Recorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer a raw case's request with its bytes (origin filled in), then close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    target = head.split(b" ", 2)[1].decode("latin-1")
    name = target.split("?", 1)[0].removeprefix("/c/")
    case = recorder.cases.get(name)
    origin = ""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"origin":
            origin = value.strip().decode("latin-1")
    is_preflight = head.startswith(b"OPTIONS ") and b"\r\naccess-control-request-method:" in (
        head.lower()
    )
    scripted = None
    if case is not None:
        scripted = case.raw_preflight if is_preflight else case.raw_actual
    if scripted is None:
        raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    else:
        raw = fill_origin(scripted.decode("latin-1"), origin).encode("latin-1")
        key = f"{name}#preflight" if is_preflight else name
        recorder.raw_sent[key] = raw
        recorder.raw_requests[key] = head
    writer.write(raw)
    try:
        await writer.drain()
        await asyncio.sleep(0.05)
    finally:
        writer.close()


def fill_origin(value: str, origin: str) -> str:
    """A scripted header value with the origin placeholders replaced."""
    return value.replace(UPPER_ORIGIN_PLACEHOLDER, origin.upper()).replace(
        ORIGIN_PLACEHOLDER, origin
    )


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _answer(recorder: _Recorder) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def answer(request: web.Request) -> web.StreamResponse:
        case = recorder.cases.get(request.match_info["name"])
        if case is None:
            return web.Response(status=404)
        origin = request.headers.get("Origin", "")
        # A preflight is the OPTIONS request that carries ACRM; a page's own
        # fetch(url, {method: "OPTIONS"}) is an actual request.
        is_preflight = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        scripted = case.preflight_response if is_preflight else case.actual_response
        # A preflight nobody scripted gets what a server without an OPTIONS
        # route sends; the preflight-needed comparison reports the surprise.
        status = 405 if scripted is None else scripted.status
        lines: HeaderLines = () if scripted is None else scripted.lines
        headers: CIMultiDict[str] = CIMultiDict((n, fill_origin(v, origin)) for n, v in lines)
        reason = None if status in _KNOWN_STATUSES else "Scripted"  # e.g. 299
        body = b"" if status in (204, 304) or request.method == "HEAD" else b"ok"
        response = web.StreamResponse(status=status, reason=reason, headers=headers)
        if body:
            response.content_length = len(body)
        await response.prepare(request)
        exchange = Exchange(
            method=request.method,
            request_headers=tuple(request.headers.items()),
            status=status,
            response_headers=tuple(response.headers.items()),
        )
        target = recorder.preflights if is_preflight else recorder.actuals
        target[case.name] = exchange
        if body:
            await response.write(body)
        await response.write_eof()
        return response

    return answer


def _api_app(recorder: _Recorder) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/c/{name}", _answer(recorder))
    return app


_RUNNER_JS = """
async function runCase(c) {
  const init = {method: c.method, headers: c.headers,
                credentials: c.credentials ? 'include' : 'same-origin'};
  try {
    const r = await fetch(c.url, init);
    const seen = {};
    for (const h of c.read) seen[h] = r.headers.get(h);
    await r.arrayBuffer();
    return {name: c.name, readable: true, status: r.status, seen: seen, error: null};
  } catch (e) {
    return {name: c.name, readable: false, status: null, seen: {}, error: String(e)};
  }
}
"""

_PAGE = """<!doctype html><meta charset="utf-8"><title>cors differential</title>
<script>{runner}
const CASES = {cases};
const OPAQUE_DOC = {opaque_doc};
async function report(result) {{
  await fetch('/result', {{method: 'POST', body: JSON.stringify(result)}});
}}
async function main() {{
  for (const c of CASES) await report(await runCase(c));
  if (OPAQUE_DOC !== null) {{
    const pending = new Promise((resolve) => {{
      window.addEventListener('message', async (event) => {{
        for (const r of event.data) await report(r);
        resolve();
      }});
    }});
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-scripts');
    frame.srcdoc = OPAQUE_DOC;
    document.body.appendChild(frame);
    await pending;
  }}
  await fetch('/done', {{method: 'POST'}});
}}
window.addEventListener('load', main);
</script><body></body>
"""

_OPAQUE_DOC = """<!doctype html><script>{runner}
const CASES = {cases};
(async () => {{
  const results = [];
  for (const c of CASES) results.push(await runCase(c));
  parent.postMessage(results, '*');
}})();
</script>"""


def _case_json(case: ScriptedCase, bases: Mapping[str, str], token: str) -> dict[str, object]:
    return {
        "name": case.name,
        "url": _case_url(case, bases, token),
        "method": case.method,
        "headers": [list(line) for line in case.request_headers],
        "credentials": case.credentials,
        "read": list(case.read_headers),
    }


def _case_url(case: ScriptedCase, bases: Mapping[str, str], token: str) -> str:
    # A token per launch keeps every URL fresh (no cache can answer for it).
    base = bases["raw"] if case.raw_actual is not None else bases["api"]
    if case.same_origin:
        base = bases["page"]
    return f"{base}/c/{quote(case.name)}?run={token}"


def _script_literal(value: object) -> str:
    # JSON inside <script>: escape "</" so no value can close the element.
    return json.dumps(value).replace("</", "<\\/")


def _page_app(recorder: _Recorder, bases: Mapping[str, str], token: str) -> web.Application:
    normal = [_case_json(c, bases, token) for c in recorder.cases.values() if not c.opaque]
    opaque = [_case_json(c, bases, token) for c in recorder.cases.values() if c.opaque]
    opaque_doc = (
        _OPAQUE_DOC.format(runner=_RUNNER_JS, cases=_script_literal(opaque)) if opaque else None
    )
    page = _PAGE.format(
        runner=_RUNNER_JS,
        cases=_script_literal(normal),
        opaque_doc=_script_literal(opaque_doc),
    )

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def result(request: web.Request) -> web.Response:
        data = json.loads(await request.text())
        recorder.results[str(data["name"])] = data
        return web.Response(status=204)

    async def done(_: web.Request) -> web.Response:
        recorder.done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_post("/result", result)
    app.router.add_post("/done", done)
    # Same-origin cases: the page's own server answers them as the API would.
    app.router.add_route("*", "/c/{name}", _answer(recorder))
    return app


def _console_lines(log: str) -> dict[str, str]:
    """Chromium's CORS console messages by request URL.

    A console line on stderr reads
    ``[pid:tid:time:INFO:CONSOLE:N] "MESSAGE", source: URL (N)``.
    """
    found: dict[str, str] = {}
    marker = "\"Access to fetch at '"
    for line in log.splitlines():
        start = line.find(marker)
        end = line.rfind('", source:')
        if start < 0 or end < start:
            continue
        message = line[start + 1 : end]
        url = message[len("Access to fetch at '") :].split("'", 1)[0]
        found.setdefault(url, message)
    return found


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    # Chromium runs in its own session (start_new_session): signalling that
    # process group reaches the renderer, GPU and zygote children it spawned.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def run_cases(cases: Sequence[ScriptedCase]) -> dict[str, CaseOutcome]:
    """Run every case in one Chromium launch; outcomes by case name."""
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("case names must be unique")
    recorder = _Recorder(cases={c.name: c for c in cases})
    token = os.urandom(6).hex()
    api_sock, page_sock = _listening_socket(), _listening_socket()
    api_base = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    page_origin = f"http://127.0.0.1:{page_sock.getsockname()[1]}"
    raw_server = await asyncio.start_server(lambda r, w: _serve_raw(recorder, r, w), "127.0.0.1", 0)
    raw_base = f"http://127.0.0.1:{raw_server.sockets[0].getsockname()[1]}"
    bases = {"api": api_base, "page": page_origin, "raw": raw_base}
    runners = [
        web.AppRunner(_api_app(recorder), access_log=None),
        web.AppRunner(_page_app(recorder, bases, token), access_log=None),
    ]
    with tempfile.TemporaryDirectory(prefix="cors-chromium-") as tmp:
        log_path = Path(tmp) / "chromium.log"
        try:
            for runner, sock in zip(runners, (api_sock, page_sock), strict=True):
                await runner.setup()
                await web.SockSite(runner, sock).start()
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    str(CHROMIUM),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    f"--user-data-dir={Path(tmp) / 'profile'}",
                    "--enable-logging=stderr",
                    "--v=0",
                    f"{page_origin}/",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
                try:
                    await asyncio.wait_for(recorder.done.wait(), timeout=SUITE_TIMEOUT_S)
                except TimeoutError:
                    pass
                finally:
                    await _terminate(process)
        finally:
            for runner in runners:
                await runner.cleanup()
            api_sock.close()
            page_sock.close()
            raw_server.close()
            await raw_server.wait_closed()
        log_text = log_path.read_text(encoding="utf-8", errors="replace")

    missing = [n for n in names if n not in recorder.results]
    if missing:
        tail = "\n".join(log_text.splitlines()[-30:])
        raise AssertionError(f"Chromium reported no result for {missing}; log tail:\n{tail}")
    console = _console_lines(log_text)
    outcomes: dict[str, CaseOutcome] = {}
    for case in cases:
        data = recorder.results[case.name]
        url = _case_url(case, bases, token)
        seen = data.get("seen") or {}
        assert isinstance(seen, dict)
        status = data.get("status")
        error = data.get("error")
        origin = "null" if case.opaque else page_origin
        preflight = recorder.preflights.get(case.name)
        actual = recorder.actuals.get(case.name)
        actual_reply = _reply(actual, case.actual_response, origin)
        assert actual_reply is not None
        outcomes[case.name] = CaseOutcome(
            url=url,
            origin=origin,
            readable=bool(data["readable"]),
            status=status if isinstance(status, int) else None,
            error=str(error) if error is not None else None,
            seen_headers={str(k): (None if v is None else str(v)) for k, v in seen.items()},
            console=console.get(url),
            preflight=preflight,
            actual=actual,
            preflight_response=_reply(preflight, case.preflight_response, origin),
            actual_response=actual_reply,
            raw_sent=recorder.raw_sent.get(case.name),
            raw_preflight_sent=recorder.raw_sent.get(f"{case.name}#preflight"),
            raw_request=recorder.raw_requests.get(case.name),
            raw_preflight_request=recorder.raw_requests.get(f"{case.name}#preflight"),
        )
    return outcomes


@pytest.fixture(scope="session")
def chromium_run() -> Callable[[Sequence[ScriptedCase]], dict[str, CaseOutcome]]:
    """Run cases in Chromium (synchronously, in a private event loop)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")

    def run(cases: Sequence[ScriptedCase]) -> dict[str, CaseOutcome]:
        return asyncio.run(run_cases(cases))

    return run
