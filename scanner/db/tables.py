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
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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

# Re-exported: the columns are as long as the core's rules allow.
from scanner.core.endpoints import METHOD_LENGTH as METHOD_LENGTH
from scanner.core.endpoints import NAME_LENGTH as NAME_LENGTH
from scanner.core.endpoints import OWNER_LENGTH as OWNER_LENGTH
from scanner.core.endpoints import TAG_LENGTH as TAG_LENGTH

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

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
    # The front end's own request headers, [[name, value], ...]; the values are secrets.
    request_headers: Mapped[list[list[str]] | None] = mapped_column(JSON)
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
    """One write, by whom (token name or ``cli``, and the token's id), on what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(TOKEN_NAME_LENGTH))
    # The API token that made the change; None for the CLI, serve and anonymous clients.
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- scans -------------------------------------------------------------------


class RunRow(Base):
    """One scan (a "run"): what was selected, its progress and outcome.

    A scheduled run carries its schedule and nominal tick; UNIQUE(schedule_id,
    scheduled_for) makes each tick produce exactly one run however many
    schedulers fire it. ``items_remaining`` reaching 0 triggers finalisation,
    which sets ``finalized_at`` exactly once.
    """

    __tablename__ = "scans"
    __table_args__ = (
        Index(None, "status"),
        UniqueConstraint("schedule_id", "scheduled_for"),
    )

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
    # -- runs and work (issue 4) --
    schedule_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("schedules.id", ondelete="SET NULL")
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    items_total: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    items_remaining: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # -- run coverage (issue 12): endpoints no probe got an answer from --
    endpoints_unreachable: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The last probe id given out in this scan (scan_exchanges), and the
    # ruleset the scan was judged by (scanner.core.catalogue.RULES_REVISION).
    probe_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    rules_revision: Mapped[int | None] = mapped_column(Integer)


class RunEndpointRow(Base):
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


class RunExchangeRow(Base):
    """Every probe exchange of one endpoint in one scan, in one compressed document.

    ``body`` is zlib-compressed JSON, one object per probe (``scanner.db.runs``
    packs and unpacks it): an endpoint's 60-80 exchanges repeat most of their
    header lines, so together they compress to a few KB where one row per
    probe took ~65 KB. Probe ids run from ``first_probe_id`` to
    ``last_probe_id`` (unique within the scan, in storage order); ``timings``
    holds each probe's kind and elapsed milliseconds for the metrics, so they
    never unpack a body; ``snapshot`` is the run diff's view of them.
    """

    __tablename__ = "scan_exchanges"
    __table_args__ = (
        PrimaryKeyConstraint("scan_id", "endpoint_id"),
        Index(None, "scan_id", "last_probe_id"),
    )

    scan_id: Mapped[int] = mapped_column(Integer, ForeignKey("scans.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    first_probe_id: Mapped[int] = mapped_column(Integer)
    last_probe_id: Mapped[int] = mapped_column(Integer)
    probe_count: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the run diff reads: each probe's normalised CORS lines and errors,
    # compressed (scanner.db.runs.pack_snapshot); NULL for rows packed by the
    # migration, whose diff view is computed from ``body``.
    snapshot: Mapped[bytes | None] = mapped_column(LargeBinary)


class RunFindingRow(Base):
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


# -- findings, regressions and alert hooks (issue 5) ----------------------------
#
# ``tracked_findings`` holds one row per fingerprint across runs (the core's
# TrackedFinding, version-guarded); ``finding_events`` is the append-only log
# the diff and triage write; ``hooks`` are alert receivers and
# ``hook_deliveries`` their outbox, written in the diff's transaction and
# claimed by dispatchers with a lease; ``delivery_attempts`` logs every try.

FINGERPRINT_LENGTH = 100
EVENT_KIND_LENGTH = 64
MESSAGE_ID_LENGTH = 64
LEASE_TOKEN_LENGTH = 64


class TrackedFindingRow(Base):
    """One finding across runs, unique by fingerprint (``scanner.core.lifecycle.TrackedFinding``)."""

    __tablename__ = "tracked_findings"
    __table_args__ = (
        UniqueConstraint("fingerprint"),
        Index(None, "endpoint_id"),
        Index(None, "status"),
        Index(None, "rule_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT_LENGTH))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(100))
    origin_class: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    first_seen_run: Mapped[int] = mapped_column(Integer)
    last_seen_run: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    not_verified_run: Mapped[int | None] = mapped_column(Integer)
    probe_keys: Mapped[list[str]] = mapped_column(JSON)
    triage_kind: Mapped[str | None] = mapped_column(String(16))
    triage_by: Mapped[str | None] = mapped_column(String(TOKEN_NAME_LENGTH))
    triage_reason: Mapped[str | None] = mapped_column(Text)
    triage_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    triage_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)


class FindingEventRow(Base):
    """One event of the diff or of triage (``scanner.core.lifecycle.Event``), append-only."""

    __tablename__ = "finding_events"
    __table_args__ = (
        Index(None, "fingerprint"),
        Index(None, "run_id"),
        Index(None, "is_regression", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(EVENT_KIND_LENGTH))
    transition: Mapped[str | None] = mapped_column(String(EVENT_KIND_LENGTH))
    fingerprint: Mapped[str | None] = mapped_column(String(FINGERPRINT_LENGTH))
    endpoint_id: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    rule_id: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[str | None] = mapped_column(String(16))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    is_regression: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class HookRow(Base):
    """An alert receiver. Secrets are stored as given and never returned by the API."""

    __tablename__ = "hooks"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    github_signature: Mapped[bool] = mapped_column(Boolean)
    routing_key: Mapped[str | None] = mapped_column(Text)
    event_kinds: Mapped[list[str]] = mapped_column(JSON)
    min_severity: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSON)
    owners: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(TOKEN_NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HookDeliveryRow(Base):
    """One message for one hook: the outbox row, claimed with a lease like work items.

    ``msg_id`` is the ``webhook-id``, the same on every retry. ``events``
    holds the events themselves (JSON: ``scanner.alerts.outbox.outbox_message``):
    the channel's body is rendered at send time from them and the hook's
    current configuration. ``body`` is only set on rows queued before
    migration 0011 (the body rendered then, sent as is; PagerDuty's without
    its routing key).
    """

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "hook_id"),
        UniqueConstraint("msg_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "hook_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hook_id: Mapped[int] = mapped_column(Integer, ForeignKey("hooks.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("finding_events.id", ondelete="SET NULL")
    )
    run_id: Mapped[int | None] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(EVENT_KIND_LENGTH))
    msg_id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH))
    events: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_token: Mapped[str | None] = mapped_column(String(LEASE_TOKEN_LENGTH))
    leased_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeliveryAttemptRow(Base):
    """One attempt of one delivery: what happened, for the delivery log."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("hook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    response_excerpt: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)


# -- runs and work (issue 4): schedules, leased work items, workers -----------------

_QUEUED = text("status = 'queued'")
_LEASED = text("status = 'leased'")


class ScheduleRow(Base):
    """A cron schedule: when (cron in ``timezone``) to scan which endpoints (``selection``)."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Timer spread in seconds; NULL = the service's CORS_SCANNER_SCHEDULE_JITTER.
    jitter_seconds: Mapped[int | None] = mapped_column(Integer)
    # The newest nominal tick already planned: where start-up catch-up resumes.
    last_planned_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkItemRow(Base):
    """One unit of a run's work, claimed under a lease (see ``scanner.db.leases``).

    ``kind`` is ``probe_batch`` (payload: endpoint ids of one host) or
    ``finalize_run``. ``host_key`` (scheme://host:port) is what per-host
    politeness across workers locks on. Lease columns: ``leased_by``,
    ``lease_token`` (fencing), ``lease_expires_at`` (database clock).
    """

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("run_id", "kind", "batch_key"),
        Index(
            "ix_work_items_queued", "priority", "id", postgresql_where=_QUEUED, sqlite_where=_QUEUED
        ),
        Index(
            "ix_work_items_leased",
            "lease_expires_at",
            postgresql_where=_LEASED,
            sqlite_where=_LEASED,
        ),
        Index(
            "ix_work_items_leased_host", "host_key", postgresql_where=_LEASED, sqlite_where=_LEASED
        ),
        Index(None, "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("scans.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    batch_key: Mapped[str] = mapped_column(String(200))
    host_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    leased_by: Mapped[str | None] = mapped_column(String(36))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    leased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    """A live (or recently live) worker process, refreshed by its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime())


# -- metrics (issue 10 item 8): monotonic counters ------------------------------------


class MetricCounterRow(Base):
    """A Prometheus counter kept as a running total (``scanner.db.counters``).

    Counted where the thing happens, in the same transaction, so a total never
    goes down when the rows it counted are deleted (a hook and its deliveries).
    ``labels`` is the canonical ``k=v,k=v`` form, keys sorted.
    """

    __tablename__ = "metric_counters"
    __table_args__ = (PrimaryKeyConstraint("name", "labels"),)

    name: Mapped[str] = mapped_column(String(100))
    labels: Mapped[str] = mapped_column(String(255))
    value: Mapped[int] = mapped_column(BigInteger)


# -- dashboard sessions (issue 14) ----------------------------------------------------

SESSION_HASH_LENGTH = 64


class DashboardSessionRow(Base):
    """A signed-in dashboard browser: the SHA-256 of its cookie, tied to the token it used.

    Every request joins the token, so a revoked token ends its sessions at
    once; deleting the token deletes them (CASCADE).
    """

    __tablename__ = "dashboard_sessions"
    __table_args__ = (
        UniqueConstraint("session_hash"),
        Index(None, "token_id"),
        Index(None, "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(SESSION_HASH_LENGTH))
    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("api_tokens.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(SESSION_HASH_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
