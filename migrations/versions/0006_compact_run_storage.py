"""Compact run storage: an endpoint's exchanges in one compressed row; runs record their ruleset.

``scan_probes`` (one row per probe, ~65 KB per endpoint per run) becomes
``scan_exchanges`` (one row per scan and endpoint, the probe documents as
zlib-compressed JSON rows, a few KB). Existing probe rows are packed into it,
their ids kept where an endpoint's probes were numbered in a row (they are
when saved together, as every version did); ``scans.probe_seq`` continues
each scan's numbering. ``scans.rules_revision`` is the ruleset a run was
judged by (NULL for runs before this revision). Downgrade unpacks the rows
back into ``scan_probes``.

Revision ID: 0006_compact_run_storage
Revises: 0005_dashboard_sessions
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006_compact_run_storage"
down_revision: str | Sequence[str] | None = "0005_dashboard_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# scanner.db.runs._EXCHANGE_FIELDS as of this revision (a migration never imports the app).
_FIELDS = (
    "probe_key",
    "kind",
    "purpose",
    "origin",
    "origin_kind",
    "method",
    "url",
    "request_headers",
    "status",
    "reason",
    "response_headers",
    "error",
    "error_detail",
    "elapsed_ms",
    "attempts",
    "verdict",
)
_TYPES: dict[str, Any] = {
    "request_headers": sa.JSON,
    "response_headers": sa.JSON,
    "verdict": sa.JSON,
    "status": sa.Integer,
    "elapsed_ms": sa.Float,
    "attempts": sa.Integer,
}
_CHUNK = 200  # endpoints per read

_exchanges = sa.table(
    "scan_exchanges",
    sa.column("scan_id", sa.Integer),
    sa.column("endpoint_id", sa.Integer),
    sa.column("first_probe_id", sa.Integer),
    sa.column("last_probe_id", sa.Integer),
    sa.column("probe_count", sa.Integer),
    sa.column("body", sa.LargeBinary),
    sa.column("timings", sa.JSON),
)
_probes = sa.table(
    "scan_probes",
    sa.column("id", sa.Integer),
    sa.column("scan_id", sa.Integer),
    sa.column("endpoint_id", sa.Integer),
    *(sa.column(n, _TYPES.get(n, sa.String)) for n in _FIELDS),
)


def _groups(bind: sa.Connection) -> Iterator[tuple[int, int, list[Any]]]:
    # Scan by scan, a couple of hundred endpoints at a time: memory holds one
    # chunk, not the table, and no cursor stays open (PostgreSQL would then
    # refuse the DROP TABLE that follows).
    scans = bind.execute(sa.select(_probes.c.scan_id).distinct().order_by(_probes.c.scan_id))
    for scan_id in list(scans.scalars()):
        endpoints = bind.execute(
            sa.select(_probes.c.endpoint_id)
            .where(_probes.c.scan_id == scan_id)
            .distinct()
            .order_by(_probes.c.endpoint_id)
        )
        ids = list(endpoints.scalars())
        for chunk in (ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)):
            rows = bind.execute(
                sa.select(_probes)
                .where(_probes.c.scan_id == scan_id, _probes.c.endpoint_id.in_(chunk))
                .order_by(_probes.c.endpoint_id, _probes.c.id)
            ).all()
            by_endpoint: dict[int, list[Any]] = {}
            for row in rows:
                by_endpoint.setdefault(row.endpoint_id, []).append(row)
            for endpoint_id, group in by_endpoint.items():
                yield scan_id, endpoint_id, group


def upgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.add_column(
            sa.Column("probe_seq", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("rules_revision", sa.Integer(), nullable=True))
    op.create_table(
        "scan_exchanges",
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("first_probe_id", sa.Integer(), nullable=False),
        sa.Column("last_probe_id", sa.Integer(), nullable=False),
        sa.Column("probe_count", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_exchanges_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", "endpoint_id", name=op.f("pk_scan_exchanges")),
    )
    op.create_index(
        op.f("ix_scan_exchanges_scan_id_last_probe_id"),
        "scan_exchanges",
        ["scan_id", "last_probe_id"],
        unique=False,
    )
    bind = op.get_bind()
    seq: dict[int, int] = {}
    batch: list[dict[str, Any]] = []
    for scan_id, endpoint_id, rows in _groups(bind):
        first = rows[0].id
        docs = [[getattr(r, n) for n in _FIELDS] for r in rows]
        timings: dict[str, list[float]] = {}
        for r in rows:
            timings.setdefault(str(r.kind), []).append(float(r.elapsed_ms))
        body = zlib.compress(json.dumps(docs, separators=(",", ":")).encode(), 6)
        last = first + len(rows) - 1
        seq[scan_id] = max(seq.get(scan_id, 0), last)
        batch.append(
            {
                "scan_id": scan_id,
                "endpoint_id": endpoint_id,
                "first_probe_id": first,
                "last_probe_id": last,
                "probe_count": len(rows),
                "body": body,
                "timings": timings,
            }
        )
        if len(batch) >= 200:
            bind.execute(sa.insert(_exchanges), batch)
            batch = []
    if batch:
        bind.execute(sa.insert(_exchanges), batch)
    scans = sa.table("scans", sa.column("id", sa.Integer), sa.column("probe_seq", sa.Integer))
    for scan_id, last in seq.items():
        bind.execute(sa.update(scans).where(scans.c.id == scan_id).values(probe_seq=last))
    op.drop_table("scan_probes")


def downgrade() -> None:
    op.create_table(
        "scan_probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("probe_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("origin_kind", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("request_headers", sa.JSON(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("elapsed_ms", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name=op.f("fk_scan_probes_scan_id_scans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_probes")),
        sa.UniqueConstraint(
            "scan_id",
            "endpoint_id",
            "probe_key",
            name=op.f("uq_scan_probes_scan_id_endpoint_id_probe_key"),
        ),
    )
    bind = op.get_bind()
    # Probe ids of new runs restart per scan: renumber globally so they stay unique.
    next_id = 1
    query = sa.select(_exchanges).order_by(_exchanges.c.scan_id, _exchanges.c.first_probe_id)
    rows = list(bind.execute(query))
    for row in rows:
        docs = json.loads(zlib.decompress(row.body))
        values = []
        for doc in docs:
            values.append(
                {"id": next_id, "scan_id": row.scan_id, "endpoint_id": row.endpoint_id}
                | dict(zip(_FIELDS, doc, strict=True))
            )
            next_id += 1
        if values:
            bind.execute(sa.insert(_probes), values)
    op.drop_index(op.f("ix_scan_exchanges_scan_id_last_probe_id"), table_name="scan_exchanges")
    op.drop_table("scan_exchanges")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("rules_revision")
        batch.drop_column("probe_seq")
