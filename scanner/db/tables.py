"""The database schema: SQLAlchemy 2 declarative tables, the one source Alembic migrates.

Every schema change is an Alembic revision under ``migrations/``; the drift
test (``tests/db/test_migrations.py``) fails when these classes and the
migrated database disagree.

Timestamps are ``UTCDateTime``: timezone-aware UTC in Python on every backend.
JSON columns are ``sqlalchemy.JSON`` (``json`` on PostgreSQL, text on SQLite).
Constraint names follow one naming convention so SQLite batch migrations and
the drift comparison see the same names everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column sizes shared with validation (inventory, policies, tokens).
METHOD_LENGTH = 16
NAME_LENGTH = 200
OWNER_LENGTH = 200
TAG_LENGTH = 100
TOKEN_NAME_LENGTH = 200
TOKEN_PREFIX_LENGTH = 12


def utc_now() -> datetime:
    """The current time, timezone-aware UTC: what every timestamp column stores."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type and
    SQLAlchemy's SQLite DATETIME drops ``tzinfo`` on the way in, so values are
    converted to UTC before they are written (making the stored text sortable)
    and tagged UTC on the way out. Naive datetimes are refused: their zone
    would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is the schema (also exported as ``metadata``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


# -- inventory ---------------------------------------------------------------


class EndpointRow(Base):
    """An API endpoint to scan, unique by (method, url)."""

    __tablename__ = "endpoints"
    __table_args__ = (
        UniqueConstraint("method", "url"),
        Index(None, "owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    url: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    owner: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EndpointTagRow(Base):
    """One tag of one endpoint."""

    __tablename__ = "endpoint_tags"
    __table_args__ = (
        PrimaryKeyConstraint("endpoint_id", "tag"),
        Index(None, "tag"),
    )

    endpoint_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("endpoints.id", ondelete="CASCADE")
    )
    tag: Mapped[str] = mapped_column(String(TAG_LENGTH))


class PolicyRow(Base):
    """A policy layer: the org default, one tag's, or one endpoint's override.

    ``scope_key`` (``default``, ``tag:<tag>``, ``endpoint:<id>``) makes each
    scope unique. A NULL field means "inherit from the layer below".
    """

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(150))
    scope: Mapped[str] = mapped_column(String(16))
    tag: Mapped[str | None] = mapped_column(String(TAG_LENGTH))
    endpoint_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("endpoints.id", ondelete="CASCADE")
    )
    allowed_origins: Mapped[list[str] | None] = mapped_column(JSON)
    allow_credentials: Mapped[bool | None] = mapped_column(Boolean)
    allowed_methods: Mapped[list[str] | None] = mapped_column(JSON)
    allowed_headers: Mapped[list[str] | None] = mapped_column(JSON)
    exposed_headers: Mapped[list[str] | None] = mapped_column(JSON)
    max_age: Mapped[int | None] = mapped_column(Integer)
    public: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- access ------------------------------------------------------------------


class ApiTokenRow(Base):
    """An API token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_LENGTH))
    token_prefix: Mapped[str] = mapped_column(String(TOKEN_PREFIX_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(TOKEN_NAME_LENGTH))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLogRow(Base):
    """One write, by whom (token name or ``cli``), on what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(TOKEN_NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- scans -------------------------------------------------------------------


class ScanRow(Base):
    """One scan: what was selected, its progress and outcome."""

    __tablename__ = "scans"
    __table_args__ = (Index(None, "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(TOKEN_NAME_LENGTH))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    endpoints_total: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    endpoints_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    probes_total: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    probe_errors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    findings_total: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ScanEndpointRow(Base):
    """One endpoint's result in one scan (no FK to endpoints: history outlives them)."""

    __tablename__ = "scan_endpoints"
    __table_args__ = (PrimaryKeyConstraint("scan_id", "endpoint_id"),)

    scan_id: Mapped[int] = mapped_column(Integer, ForeignKey("scans.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    url: Mapped[str] = mapped_column(Text)
    reachable: Mapped[bool] = mapped_column(Boolean)
    probe_count: Mapped[int] = mapped_column(Integer)
    probe_errors: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    unchecked: Mapped[list[str]] = mapped_column(JSON)


class ScanProbeRow(Base):
    """One probe exchange of one scan, idempotent by (scan, endpoint, probe key)."""

    __tablename__ = "scan_probes"
    __table_args__ = (UniqueConstraint("scan_id", "endpoint_id", "probe_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(Integer, ForeignKey("scans.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    probe_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(Text)
    origin_kind: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    url: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[list[Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    elapsed_ms: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ScanFindingRow(Base):
    """One finding of one scan, idempotent by (scan, endpoint, fingerprint)."""

    __tablename__ = "scan_findings"
    __table_args__ = (
        UniqueConstraint("scan_id", "endpoint_id", "fingerprint"),
        Index(None, "scan_id", "severity"),
        Index(None, "rule_id"),
        Index(None, "endpoint_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(Integer, ForeignKey("scans.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100))
    origin_class: Mapped[str] = mapped_column(String(64))
    credentialed: Mapped[bool] = mapped_column(Boolean)
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
