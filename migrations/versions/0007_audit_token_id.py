"""Audit entries record the id of the API token that made the change (issue 13).

The actor is a token's name, which is free text: two tokens may share one, and
before names like ``cli`` were reserved a token could pose as the command line.
``token_id`` says which token it was (NULL: the command line, ``serve``, or an
unauthenticated client). No foreign key: tokens are revoked, never deleted, and
an audit entry must outlive anything it names.

Revision ID: 0007_audit_token_id
Revises: 0006_compact_run_storage
Create Date: 2026-12-03 07:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_audit_token_id"
down_revision: str | Sequence[str] | None = "0006_compact_run_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("token_id")
