"""Findings with a lifecycle, their event log, alert hooks and the delivery outbox (issue 5).

Revision ID: 0003_findings_and_alerts
Revises: 0002_runs_and_work
Create Date: 2026-11-25 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_findings_and_alerts"
down_revision: str | Sequence[str] | None = "0002_runs_and_work"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tracked_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("origin_class", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("first_seen_run", sa.Integer(), nullable=False),
        sa.Column("last_seen_run", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("reopened_at", _TS, nullable=True),
        sa.Column("reopen_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("not_verified_run", sa.Integer(), nullable=True),
        sa.Column("probe_keys", sa.JSON(), nullable=False),
        sa.Column("triage_kind", sa.String(length=16), nullable=True),
        sa.Column("triage_by", sa.String(length=200), nullable=True),
        sa.Column("triage_reason", sa.Text(), nullable=True),
        sa.Column("triage_at", _TS, nullable=True),
        sa.Column("triage_until", _TS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_findings")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_tracked_findings_fingerprint")),
    )
    for column in ("endpoint_id", "status", "rule_id"):
        op.create_index(
            op.f(f"ix_tracked_findings_{column}"), "tracked_findings", [column], unique=False
        )

    op.create_table(
        "finding_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("transition", sa.String(length=64), nullable=True),
        sa.Column("fingerprint", sa.String(length=100), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("rule_id", sa.String(length=100), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("is_regression", sa.Boolean(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_events")),
    )
    op.create_index(
        op.f("ix_finding_events_fingerprint"), "finding_events", ["fingerprint"], unique=False
    )
    op.create_index(op.f("ix_finding_events_run_id"), "finding_events", ["run_id"], unique=False)
    op.create_index(
        op.f("ix_finding_events_is_regression_at"),
        "finding_events",
        ["is_regression", "at"],
        unique=False,
    )

    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", _TS, nullable=True),
        sa.Column("secret_rotated_at", _TS, nullable=True),
        sa.Column("github_signature", sa.Boolean(), nullable=False),
        sa.Column("routing_key", sa.Text(), nullable=True),
        sa.Column("event_kinds", sa.JSON(), nullable=False),
        sa.Column("min_severity", sa.String(length=16), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hooks")),
        sa.UniqueConstraint("name", name=op.f("uq_hooks_name")),
    )

    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("msg_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("first_attempted_at", _TS, nullable=True),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("leased_by", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["hook_id"],
            ["hooks.id"],
            name=op.f("fk_hook_deliveries_hook_id_hooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["finding_events.id"],
            name=op.f("fk_hook_deliveries_event_id_finding_events"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_deliveries")),
        sa.UniqueConstraint(
            "event_id", "hook_id", name=op.f("uq_hook_deliveries_event_id_hook_id")
        ),
        sa.UniqueConstraint("msg_id", name=op.f("uq_hook_deliveries_msg_id")),
    )
    op.create_index(
        op.f("ix_hook_deliveries_status_next_attempt_at"),
        "hook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_hook_deliveries_hook_id_id"), "hook_deliveries", ["hook_id", "id"], unique=False
    )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=32), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["hook_deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_hook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
        sa.UniqueConstraint(
            "delivery_id", "attempt", name=op.f("uq_delivery_attempts_delivery_id_attempt")
        ),
    )


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_index(op.f("ix_hook_deliveries_hook_id_id"), table_name="hook_deliveries")
    op.drop_index(op.f("ix_hook_deliveries_status_next_attempt_at"), table_name="hook_deliveries")
    op.drop_table("hook_deliveries")
    op.drop_table("hooks")
    op.drop_index(op.f("ix_finding_events_is_regression_at"), table_name="finding_events")
    op.drop_index(op.f("ix_finding_events_run_id"), table_name="finding_events")
    op.drop_index(op.f("ix_finding_events_fingerprint"), table_name="finding_events")
    op.drop_table("finding_events")
    for column in ("rule_id", "status", "endpoint_id"):
        op.drop_index(op.f(f"ix_tracked_findings_{column}"), table_name="tracked_findings")
    op.drop_table("tracked_findings")
