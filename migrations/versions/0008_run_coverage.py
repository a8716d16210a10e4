"""Run coverage: how many endpoints a run could not verify; header drift is not a regression (issue 12).

``scans.endpoints_unreachable`` counts the endpoints none of whose probes got
an answer, so a run says how much it saw. Header drift stopped being a
regression (it rides inside the finding event that caused it, or is
informational alone): past drift events are relabelled so ``regressions list``
shows only regressions.

Revision ID: 0008_run_coverage
Revises: 0007_audit_token_id
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_run_coverage"
down_revision: str | Sequence[str] | None = "0007_audit_token_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.add_column(
            sa.Column(
                "endpoints_unreachable", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
    op.execute(
        sa.text(
            "UPDATE finding_events SET is_regression = :no WHERE kind = 'regression.header_drift'"
        ).bindparams(no=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("endpoints_unreachable")
