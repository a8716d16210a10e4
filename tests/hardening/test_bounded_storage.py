"""A target answering with huge headers costs a bounded amount of storage (issue 13, point 2).

The target reflects any Origin with credentials (a critical finding, so
evidence is stored too) and pads every answer with big non-CORS headers:
240 lines of 16 000 bytes (over the head limit: refused as
``headers_too_large``) on one path, 14 such lines (under it: read) on the
other. One scan of both, stored and finalised the way a worker does it, adds
less than 1 MB to the database; CORS and Vary values are kept whole, the
padding by name with a cut value.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import text

from scanner.core.headers import CUT_MARK, DEFAULT_KEPT_HEADER_BYTES
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.db import runs
from scanner.db.engine import Database
from scanner.db.runs import RunSelection, RunTrigger
from scanner.engine import Engine, ScanOptions, Target
from scanner.hostnames import default_public_suffixes
from scanner.worker.finalize import finalize_run
from tests.loopback import ServeRaw

PAD = 16_000
# A long CORS value (most of the per-probe cap alone): it must survive intact.
LONG_ALLOW_HEADERS = ", ".join(f"x-custom-{i:04d}" for i in range(800))


async def _hostile(
    head: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    match = re.search(rb"\r\norigin: *([^\r]*)", head, re.IGNORECASE)
    origin = match.group(1).decode("latin-1") if match else ""
    lines = 240 if head.split(b" ", 2)[1].startswith(b"/huge") else 14
    out = [
        b"HTTP/1.1 200 OK",
        b"Content-Length: 0",
        b"Connection: close",
        b"Vary: Origin, Accept-Encoding",
        f"Access-Control-Allow-Headers: {LONG_ALLOW_HEADERS}".encode(),
    ]
    if origin:
        out.append(f"Access-Control-Allow-Origin: {origin}".encode("latin-1"))
        out.append(b"Access-Control-Allow-Credentials: true")
    out += [b"X-Pad-%03d: " % i + b"p" * PAD for i in range(lines)]
    writer.write(b"\r\n".join(out) + b"\r\n\r\n")
    await writer.drain()


async def _database_bytes(database: Database) -> int:
    async with database.session() as session:
        if database.engine.dialect.name == "sqlite":
            pages = (await session.execute(text("PRAGMA page_count"))).scalar_one()
            free = (await session.execute(text("PRAGMA freelist_count"))).scalar_one()
            size = (await session.execute(text("PRAGMA page_size"))).scalar_one()
            return int((pages - free) * size)
        return int(
            (
                await session.execute(text("SELECT pg_database_size(current_database())"))
            ).scalar_one()
        )


async def test_huge_headers_add_under_one_megabyte(database: Database, serve_raw: ServeRaw) -> None:
    base = await serve_raw(_hostile)
    targets = [
        Target(Endpoint(f"{base}/big"), Policy()),
        Target(Endpoint(f"{base}/huge"), Policy()),
    ]
    async with Engine(ScanOptions(), default_public_suffixes()) as engine:
        assessments = [await engine.assess(t) for t in targets]
    big, huge = assessments
    assert big.reachable
    assert big.findings, "the readable answers reflect origins: a finding"
    assert not huge.reachable  # every head over 256 KiB is refused
    assert {p.observation.error_detail for p in huge.probes} >= {
        "header block exceeds 262144 bytes"
    }

    before = await _database_bytes(database)
    async with database.session() as session, session.begin():
        run = await runs.create_run(
            session,
            selection=RunSelection(endpoint_ids=(1, 2)),
            trigger=RunTrigger.MANUAL,
            requested_by="cli",
            endpoints_total=2,
        )
        assert await runs.mark_running(session, run.id)
        for endpoint_id, assessment in enumerate(assessments, start=1):
            await runs.save_assessment(session, run.id, endpoint_id, assessment)
    async with database.session() as session, session.begin():
        assert await finalize_run(session, run.id)
    added = await _database_bytes(database) - before
    assert added < 1_000_000, f"one scan added {added} bytes"

    async with database.session() as session:
        probes = (await runs.list_run_probes(session, run.id, endpoint_id=1, limit=500)).items
        findings = (await runs.list_run_findings(session, run.id, limit=500)).items
    assert len(probes) == big.probe_count
    answered = [p for p in probes if p.status == 200]
    assert answered
    for probe in answered:
        headers = dict(probe.response_headers)
        assert headers["Access-Control-Allow-Headers"] == LONG_ALLOW_HEADERS
        assert headers["Vary"] == "Origin, Accept-Encoding"
        pads = [(n, v) for n, v in probe.response_headers if n.startswith("X-Pad-")]
        assert [n for n, _ in pads] == [f"X-Pad-{i:03d}" for i in range(14)]
        assert all(v.endswith(CUT_MARK) and len(v) < PAD for _, v in pads)
        assert sum(len(v) for _, v in pads) <= DEFAULT_KEPT_HEADER_BYTES
    evidence = [e for f in findings for e in f.evidence]
    assert evidence
    for exchange in evidence:
        kept = exchange["response"]["headers"]
        assert sum(len(n) + len(v) for n, v in kept if n.startswith("X-Pad-")) <= (
            DEFAULT_KEPT_HEADER_BYTES
        )
