"""Runs and work: schedules, leased work items, the workers registry (issue 4).

Adds ``schedules`` (cron + timezone + endpoint selection), ``work_items``
(a run's batches of endpoints and its finalize step, claimed under a lease)
and ``workers`` (who is working, for observability and the SQLite
one-worker-process rule). ``scans`` (our runs) gain the schedule it came from,
its nominal tick with UNIQUE(schedule_id, scheduled_for) so each tick makes
exactly one run, and the counters that drive finalisation. A fresh database
gets a default nightly schedule.

Revision ID: 0002_runs_and_work
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002_runs_and_work"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partial-index predicates: written identically for both backends.
_QUEUED = sa.text("status = 'queued'")
_LEASED = sa.text("status = 'leased'")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("jitter_seconds", sa.Integer(), nullable=True),
        sa.Column("last_planned_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_schedules_name")),
    )
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("schedule_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("items_total", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("items_remaining", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_scans_schedule_id_schedules"),
            "schedules",
            ["schedule_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_unique_constraint(
            op.f("uq_scans_schedule_id_scheduled_for"), ["schedule_id", "scheduled_for"]
        )
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("batch_key", sa.String(length=200), nullable=False),
        sa.Column("host_key", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("leased_by", sa.String(length=36), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scans.id"], name=op.f("fk_work_items_run_id_scans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_items")),
        sa.UniqueConstraint(
            "run_id", "kind", "batch_key", name=op.f("uq_work_items_run_id_kind_batch_key")
        ),
    )
    op.create_index(
        "ix_work_items_queued",
        "work_items",
        ["priority", "id"],
        unique=False,
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    op.create_index(
        "ix_work_items_leased",
        "work_items",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=_LEASED,
        sqlite_where=_LEASED,
    )
    op.create_index(
        "ix_work_items_leased_host",
        "work_items",
        ["host_key"],
        unique=False,
        postgresql_where=_LEASED,
        sqlite_where=_LEASED,
    )
    op.create_index(op.f("ix_work_items_run_id_status"), "work_items", ["run_id", "status"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    # A fresh install scans every enabled endpoint nightly, without anyone asking.
    schedules = sa.table(
        "schedules",
        sa.column("name", sa.String()),
        sa.column("cron", sa.String()),
        sa.column("timezone", sa.String()),
        sa.column("selection", sa.JSON()),
        sa.column("enabled", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as naive UTC text, like UTCDateTime does
    op.bulk_insert(
        schedules,
        [
            {
                "name": "nightly",
                "cron": "0 2 * * *",
                "timezone": "UTC",
                "selection": {},
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index(op.f("ix_work_items_run_id_status"), table_name="work_items")
    op.drop_index("ix_work_items_leased_host", table_name="work_items")
    op.drop_index("ix_work_items_leased", table_name="work_items")
    op.drop_index("ix_work_items_queued", table_name="work_items")
    op.drop_table("work_items")
    with op.batch_alter_table("scans") as batch:
        batch.drop_constraint(op.f("uq_scans_schedule_id_scheduled_for"), type_="unique")
        batch.drop_constraint(op.f("fk_scans_schedule_id_schedules"), type_="foreignkey")
        batch.drop_column("finalized_at")
        batch.drop_column("items_remaining")
        batch.drop_column("items_total")
        batch.drop_column("scheduled_for")
        batch.drop_column("schedule_id")
    op.drop_table("schedules")
