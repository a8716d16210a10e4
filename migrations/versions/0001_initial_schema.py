"""Initial schema: inventory, policies, tokens, audit log, scans (issue 3).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 14:20:57.236381
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_prefix", sa.String(length=12), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint("method", "url", name=op.f("uq_endpoints_method_url")),
    )
    op.create_index(op.f("ix_endpoints_owner"), "endpoints", ["owner"], unique=False)
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("endpoints_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("endpoints_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("probes_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("probe_errors", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("findings_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    op.create_index(op.f("ix_scans_status"), "scans", ["status"], unique=False)
    op.create_table(
        "endpoint_tags",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_endpoint_tags_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "tag", name=op.f("pk_endpoint_tags")),
    )
    op.create_index(op.f("ix_endpoint_tags_tag"), "endpoint_tags", ["tag"], unique=False)
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope_key", sa.String(length=150), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("allowed_origins", sa.JSON(), nullable=True),
        sa.Column("allow_credentials", sa.Boolean(), nullable=True),
        sa.Column("allowed_methods", sa.JSON(), nullable=True),
        sa.Column("allowed_headers", sa.JSON(), nullable=True),
        sa.Column("exposed_headers", sa.JSON(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_policies_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("scope_key", name=op.f("uq_policies_scope_key")),
    )
    op.create_table(
        "scan_endpoints",
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("probe_count", sa.Integer(), nullable=False),
        sa.Column("probe_errors", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("unchecked", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_endpoints_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", "endpoint_id", name=op.f("pk_scan_endpoints")),
    )
    op.create_table(
        "scan_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("origin_class", sa.String(length=64), nullable=False),
        sa.Column("credentialed", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_findings_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_findings")),
        sa.UniqueConstraint(
            "scan_id",
            "endpoint_id",
            "fingerprint",
            name=op.f("uq_scan_findings_scan_id_endpoint_id_fingerprint"),
        ),
    )
    op.create_index(
        op.f("ix_scan_findings_endpoint_id"), "scan_findings", ["endpoint_id"], unique=False
    )
    op.create_index(op.f("ix_scan_findings_rule_id"), "scan_findings", ["rule_id"], unique=False)
    op.create_index(
        op.f("ix_scan_findings_scan_id_severity"),
        "scan_findings",
        ["scan_id", "severity"],
        unique=False,
    )
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


def downgrade() -> None:
    op.drop_table("scan_probes")
    op.drop_index(op.f("ix_scan_findings_scan_id_severity"), table_name="scan_findings")
    op.drop_index(op.f("ix_scan_findings_rule_id"), table_name="scan_findings")
    op.drop_index(op.f("ix_scan_findings_endpoint_id"), table_name="scan_findings")
    op.drop_table("scan_findings")
    op.drop_table("scan_endpoints")
    op.drop_table("policies")
    op.drop_index(op.f("ix_endpoint_tags_tag"), table_name="endpoint_tags")
    op.drop_table("endpoint_tags")
    op.drop_index(op.f("ix_scans_status"), table_name="scans")
    op.drop_table("scans")
    op.drop_index(op.f("ix_endpoints_owner"), table_name="endpoints")
    op.drop_table("endpoints")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
