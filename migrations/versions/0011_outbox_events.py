"""Outbox rows hold the event, channel bodies are rendered at send time (issue 10 item 4).

``hook_deliveries.events`` holds the events of a delivery (JSON); the body a
receiver gets is rendered from them when it is sent. ``body`` becomes
nullable: rows queued before this revision keep the body rendered then and
are sent as is (no conversion: a body cannot be turned back into its event).

Revision ID: 0011_outbox_events
Revises: 0010_endpoint_request_headers
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_outbox_events"
down_revision: str | Sequence[str] | None = "0010_endpoint_request_headers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hook_deliveries") as batch:
        batch.add_column(sa.Column("events", sa.Text(), nullable=True))
        batch.alter_column("body", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    # Rows queued since the upgrade have no body to go back to: they are dropped
    # (an older release could not send them).
    op.execute(sa.text("DELETE FROM hook_deliveries WHERE body IS NULL"))
    with op.batch_alter_table("hook_deliveries") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch.drop_column("events")
