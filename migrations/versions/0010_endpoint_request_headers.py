"""Endpoints keep the front end's own request headers (issue 11: "or stored with the endpoint").

A JSON list of [name, value] pairs, NULL for none. The values are the
front end's secrets (an API key): every output shows them as ``[redacted]``.

Revision ID: 0010_endpoint_request_headers
Revises: 0008_run_coverage
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_endpoint_request_headers"
down_revision: str | Sequence[str] | None = "0008_run_coverage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("request_headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("request_headers")
