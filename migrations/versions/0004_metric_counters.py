"""Monotonic Prometheus counters that outlive the rows they count (issue 10 item 8).

``metric_counters`` holds running totals, incremented in the same transaction
as the thing counted. Backfilled from today's rows, so the alert-delivery
counters continue from what ``/metrics`` reported before the upgrade instead
of dropping to zero (which ``rate()`` would read as a reset).

Revision ID: 0004_metric_counters
Revises: 0003_findings_and_alerts
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_metric_counters"
down_revision: str | Sequence[str] | None = "0003_findings_and_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("labels", sa.String(length=255), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_counters")),
    )
    # The same totals /metrics computed from these rows until now ('||' is
    # string concatenation on SQLite and PostgreSQL alike).
    op.execute(
        """
        INSERT INTO metric_counters (name, labels, value)
        SELECT 'webhook_deliveries', 'channel=' || h.kind || ',outcome=' || d.status, COUNT(*)
        FROM hook_deliveries d JOIN hooks h ON h.id = d.hook_id
        WHERE d.status IN ('delivered', 'dead', 'cancelled')
        GROUP BY h.kind, d.status
        """
    )
    op.execute(
        """
        INSERT INTO metric_counters (name, labels, value)
        SELECT 'webhook_delivery_attempts', 'channel=' || h.kind || ',outcome=' || a.outcome,
               COUNT(*)
        FROM delivery_attempts a
        JOIN hook_deliveries d ON d.id = a.delivery_id
        JOIN hooks h ON h.id = d.hook_id
        GROUP BY h.kind, a.outcome
        """
    )


def downgrade() -> None:
    op.drop_table("metric_counters")
