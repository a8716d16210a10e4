"""Every stable JSON shape of stored objects: what the REST API answers and ``--format json`` prints.

One function per shape, from the records the use cases return
(``scanner.usecases``) to plain JSON values. The REST API (``scanner.api``)
and the command line (``scanner.cli``) both render through here, so a run, a
finding or a hook reads the same wherever it is seen; the OpenAPI document
(``scanner/api/handlers/*``) describes these shapes and the API tests pin
them. Times are written by :func:`scanner.core.timestamps.iso_utc`, the one
timestamp format. Reports of a run (JSON, SARIF, JUnit, CSV) are documents
of their own: ``scanner.reports``.

Secrets never appear here: a hook shows whether it has one, a token its
prefix; the one-time secret of a new hook or token is added by the caller
to the answer that created it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from scanner.core.catalogue import CATALOGUE
from scanner.core.documents import policy_to_json
from scanner.core.import_rows import ImportReport
from scanner.core.lifecycle import TrackedFinding
from scanner.core.policy_layers import EffectivePolicy
from scanner.core.severity import Severity
from scanner.core.timestamps import iso_utc
from scanner.db.audit import AuditRecord
from scanner.db.findings import EventRecord, FindingRecord
from scanner.db.hooks import DeliveryRecord, HookKind, HookRecord
from scanner.db.inventory import EndpointRecord
from scanner.db.policies import PolicyRecord
from scanner.db.runs import EndpointResult, RunFindingRecord, RunProbeRecord, RunRecord
from scanner.db.schedules import ScheduleRecord
from scanner.db.tokens import TokenRecord
from scanner.db.work import WorkerRecord
from scanner.usecases.overview import Group, Overview

JSON = dict[str, Any]

# Severities as every shape and filter lists them: the most severe first.
SEVERITIES: tuple[str, ...] = tuple(s.value for s in sorted(Severity, reverse=True))


# -- runs ----------------------------------------------------------------------


def run_json(run: RunRecord, eta_seconds: float | None = None) -> JSON:
    """A run (the API's ``Scan``): status, progress, findings by severity.

    ``eta_seconds`` comes from the run's progress (``scanner.db.work.run_progress``);
    None when unknown or finished.
    """
    counts = {s: run.severity_counts.get(s, 0) for s in SEVERITIES}
    return {
        "id": run.id,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "requested_by": run.requested_by,
        "selection": run.selection.to_json(),
        "progress": {
            "endpoints_total": run.endpoints_total,
            "endpoints_done": run.endpoints_done,
            "probes": run.probes_total,
            "probe_errors": run.probe_errors,
            "endpoints_unreachable": run.endpoints_unreachable,
            "items_total": run.items_total,
            "items_remaining": run.items_remaining,
            "eta_seconds": eta_seconds,
        },
        "coverage": run.coverage,
        "schedule_id": run.schedule_id,
        "scheduled_for": iso_utc(run.scheduled_for),
        "findings": {"total": run.findings_total, "by_severity": counts},
        "error": run.error,
        "created_at": iso_utc(run.created_at),
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
    }


def run_summary_json(run: RunRecord, eta_seconds: float | None = None) -> JSON:
    """A run as one flat record: what ``runs list|show|start|cancel --format json`` print.

    The command line's table columns are these keys, so scripts and people
    read the same names.
    """
    return {
        "id": run.id,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "schedule_id": run.schedule_id,
        "scheduled_for": iso_utc(run.scheduled_for),
        "selection": run.selection.to_json(),
        "endpoints_total": run.endpoints_total,
        "endpoints_done": run.endpoints_done,
        "probes": run.probes_total,
        "probe_errors": run.probe_errors,
        "unreachable": run.endpoints_unreachable,
        "coverage": run.coverage,
        "findings": run.findings_total,
        "items_total": run.items_total,
        "items_remaining": run.items_remaining,
        "eta_seconds": eta_seconds,
        "error": run.error,
        "created_at": iso_utc(run.created_at),
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
    }


def run_finding_json(f: RunFindingRecord) -> JSON:
    """One run's finding (the API's ``Finding``) with its rule's explanation and fix."""
    rule = CATALOGUE.get(f.rule_id)
    return {
        "id": f.id,
        "scan_id": f.scan_id,
        "endpoint_id": f.endpoint_id,
        "rule_id": f.rule_id,
        "severity": f.severity.value,
        "category": f.category,
        "title": f.title,
        "summary": f.summary,
        "fingerprint": f.fingerprint,
        "origin_class": f.origin_class,
        "credentialed": f.credentialed,
        "description": rule.description if rule else None,
        "remediation": (
            {
                "generic": rule.remediation.generic,
                "express": rule.remediation.express,
                "nginx": rule.remediation.nginx,
                "apache": rule.remediation.apache,
            }
            if rule
            else None
        ),
        "cwe": rule.cwe if rule else None,
        "evidence": f.evidence,
        "created_at": iso_utc(f.created_at),
    }


def probe_json(p: RunProbeRecord) -> JSON:
    """One stored probe exchange, as sent and received."""
    return {
        "id": p.id,
        "scan_id": p.scan_id,
        "endpoint_id": p.endpoint_id,
        "key": p.probe_key,
        "kind": p.kind,
        "purpose": p.purpose,
        "origin": p.origin,
        "origin_kind": p.origin_kind,
        "method": p.method,
        "url": p.url,
        "request_headers": p.request_headers,
        "status": p.status,
        "reason": p.reason,
        "response_headers": p.response_headers,
        "error": p.error,
        "error_detail": p.error_detail,
        "elapsed_ms": p.elapsed_ms,
        "attempts": p.attempts,
        "verdict": p.verdict,
    }


def worker_json(w: WorkerRecord) -> JSON:
    """A registered worker process."""
    return {
        "id": w.id,
        "hostname": w.hostname,
        "pid": w.pid,
        "started_at": iso_utc(w.started_at),
        "last_heartbeat": iso_utc(w.last_heartbeat),
        "live": w.live,
        "items_leased": w.items_leased,
    }


# -- tracked findings, triage and regressions ---------------------------------------


def finding_json(record: FindingRecord) -> JSON:
    """A tracked finding (one per fingerprint, across runs) with its triage."""
    f: TrackedFinding = record.finding
    triage = f.triage
    return {
        "id": record.id,
        "fingerprint": f.fingerprint,
        "endpoint_id": f.endpoint_id,
        "rule_id": f.rule_id,
        "origin_class": f.origin_class,
        "severity": f.severity.value,
        "status": f.status.value,
        "title": f.title,
        "summary": f.summary,
        "first_seen_run": f.first_seen_run,
        "last_seen_run": f.last_seen_run,
        "first_seen_at": iso_utc(f.first_seen_at),
        "last_seen_at": iso_utc(f.last_seen_at),
        "resolved_at": iso_utc(f.resolved_at),
        "reopened_at": iso_utc(f.reopened_at),
        "reopen_count": f.reopen_count,
        "not_verified_run": f.not_verified_run,
        "verified": not f.unverified,
        "triage": (
            {
                "kind": triage.kind.value,
                "by": triage.by,
                "reason": triage.reason,
                "at": iso_utc(triage.at),
                "until": iso_utc(triage.until),
            }
            if triage
            else None
        ),
        "version": f.version,
    }


def event_json(record: EventRecord) -> JSON:
    """A finding event (a regression when ``is_regression``)."""
    e = record.event
    return {
        "id": record.id,
        "kind": e.kind.value,
        "transition": e.transition.value if e.transition else None,
        "finding_id": record.finding_id,
        "fingerprint": e.fingerprint,
        "endpoint_id": e.endpoint_id,
        "run_id": e.run_id,
        "rule_id": e.rule_id,
        "severity": e.severity.value if e.severity else None,
        "is_regression": e.is_regression,
        "before": e.before,
        "after": e.after,
        "at": iso_utc(e.at),
    }


def history_json(record: FindingRecord, events: Iterable[EventRecord]) -> JSON:
    """A finding and its events, oldest first."""
    return {"finding": finding_json(record), "events": [event_json(e) for e in events]}


# -- inventory and policies ------------------------------------------------------------


def endpoint_json(e: EndpointRecord) -> JSON:
    """An inventory endpoint."""
    return {
        "id": e.id,
        "method": e.method,
        "url": e.url,
        "name": e.name,
        "owner": e.owner,
        "tags": list(e.tags),
        "enabled": e.enabled,
        "notes": e.notes,
        # Names only: the values are the front end's secrets.
        "request_headers": e.as_input().public_request_headers,
        "created_at": iso_utc(e.created_at),
        "updated_at": iso_utc(e.updated_at),
    }


def policy_json(p: PolicyRecord) -> JSON:
    """A policy layer; null fields inherit from the layer below."""
    return {
        "id": p.id,
        "scope": p.scope.value,
        "tag": p.tag,
        "endpoint_id": p.endpoint_id,
        **p.fields.as_mapping(),
        "created_at": iso_utc(p.created_at),
        "updated_at": iso_utc(p.updated_at),
    }


def effective_policy_json(endpoint_id: int, eff: EffectivePolicy) -> JSON:
    """The policy an endpoint is judged by, and where each field comes from."""
    return {
        "endpoint_id": endpoint_id,
        "policy": policy_to_json(eff.policy),
        "sources": dict(eff.sources),
    }


def import_report_json(report: ImportReport) -> JSON:
    """What an import created, changed, left alone, and every row it could not take."""
    fields = {(c.method, c.url): list(c.fields) for c in report.changes}

    def key(k: tuple[str, str]) -> dict[str, str]:
        return {"method": k[0], "url": k[1]}

    return {
        "dry_run": report.dry_run,
        "summary": {
            "created": len(report.created),
            "changed": len(report.changed),
            "unchanged": len(report.unchanged),
            "errors": len(report.errors),
        },
        "created": [key(k) for k in report.created],
        "changed": [{**key(k), "fields": fields.get(k, [])} for k in report.changed],
        "unchanged": [key(k) for k in report.unchanged],
        "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in report.errors],
    }


# -- schedules -----------------------------------------------------------------------


def schedule_json(s: ScheduleRecord, next_ticks: Iterable[datetime]) -> JSON:
    """A schedule with its next nominal ticks (UTC)."""
    return {
        "id": s.id,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "selection": s.selection.to_json(),
        "enabled": s.enabled,
        "jitter_seconds": s.jitter_seconds,
        "last_planned_for": iso_utc(s.last_planned_for),
        "next_ticks": [iso_utc(t) for t in next_ticks],
        "created_at": iso_utc(s.created_at),
        "updated_at": iso_utc(s.updated_at),
    }


# -- alert hooks -----------------------------------------------------------------------


def hook_json(hook: HookRecord, *, secret: str | None = None, full_url: bool = False) -> JSON:
    """A hook without its secrets (``secret_set`` says whether one is set).

    ``secret``: the one the hook was just given (created or rotated), shown this once.
    ``full_url``: for admins (the scope that manages hooks) and the local command line.
    Anyone else sees the URL as scheme and host only: receivers put credentials in the
    path (Slack's ``/services/…``, others alike) and the query (``?token=…``).
    """
    if full_url:
        url = hook.url if hook.kind is not HookKind.SLACK else _masked_slack_url(hook.url)
    else:
        url = hook_origin(hook.url)
    doc: JSON = {
        "id": hook.id,
        "name": hook.name,
        "kind": hook.kind.value,
        "url": url,
        "github_signature": hook.github_signature,
        "event_kinds": list(hook.event_kinds),
        "min_severity": hook.min_severity.value if hook.min_severity else None,
        "tags": list(hook.tags),
        "owners": list(hook.owners),
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "secret_set": hook.secret_set,
        "secret_rotated_at": iso_utc(hook.secret_rotated_at),
        "previous_secret_valid_until": iso_utc(hook.previous_secret_until),
        "created_by": hook.created_by,
        "created_at": iso_utc(hook.created_at),
        "updated_at": iso_utc(hook.updated_at),
    }
    if secret is not None:
        doc["secret"] = secret
    return doc


def hook_origin(url: str) -> str:
    """``scheme://host[:port]`` of a hook URL, with no user information, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else ""


def _masked_slack_url(url: str) -> str:
    # A Slack incoming-webhook URL is itself the credential: show where, not the key.
    head, sep, _rest = url.partition("/services/")
    return f"{head}{sep}…" if sep else url


def delivery_json(d: DeliveryRecord) -> JSON:
    """A delivery and its attempt log (never the body: it may name secrets' receivers)."""
    return {
        "id": d.id,
        "hook_id": d.hook_id,
        "event_id": d.event_id,
        "run_id": d.run_id,
        "event_type": d.event_type,
        "msg_id": d.msg_id,
        "status": d.status.value,
        "attempts": d.attempts,
        "next_attempt_at": iso_utc(d.next_attempt_at),
        "first_attempted_at": iso_utc(d.first_attempted_at),
        "delivered_at": iso_utc(d.delivered_at),
        "last_error": d.last_error,
        "created_at": iso_utc(d.created_at),
        "attempt_log": [
            {
                "attempt": a.attempt,
                "started_at": iso_utc(a.started_at),
                "duration_ms": a.duration_ms,
                "status": a.status,
                "outcome": a.outcome,
                "reason": a.reason,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
                "error_detail": a.error_detail,
            }
            for a in d.attempt_log
        ],
    }


# -- tokens and the audit log -------------------------------------------------------------


def token_json(t: TokenRecord) -> JSON:
    """An API token (never its secret)."""
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": sorted(s.value for s in t.scopes),
        "active": t.active,
        "created_at": iso_utc(t.created_at),
        "created_by": t.created_by,
        "last_used_at": iso_utc(t.last_used_at),
        "revoked_at": iso_utc(t.revoked_at),
    }


def token_created_json(t: TokenRecord, secret: str) -> JSON:
    """A new token and its bearer secret, which is shown this once."""
    return {"token": token_json(t), "secret": secret}


def audit_entry_json(e: AuditRecord) -> JSON:
    """One audit-log entry."""
    return {
        "id": e.id,
        "at": iso_utc(e.at),
        "actor": e.actor,
        "token_id": e.token_id,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "detail": dict(e.detail),
    }


# -- overview (issue 14: the dashboard's; an API may expose the same) ------------------


def severity_counts_json(counts: Mapping[Severity, int]) -> dict[str, int]:
    """Counts by severity, every severity present, the most severe first."""
    return {s: counts.get(Severity(s), 0) for s in SEVERITIES}


def endpoint_result_json(r: EndpointResult) -> JSON:
    """An endpoint's result in one finished run: did it answer, were its probes sent."""
    return {
        "scan_id": r.scan_id,
        "endpoint_id": r.endpoint_id,
        "method": r.method,
        "url": r.url,
        "reachable": r.reachable,
        "probes": r.probe_count,
        "probe_errors": r.probe_errors,
        "unchecked": list(r.unchecked),
        "verified": r.verified,
        "finished_at": iso_utc(r.finished_at),
    }


def group_json(g: Group) -> JSON:
    """An owner or tag with its live findings."""
    return {"name": g.name, "total": g.total, "by_severity": severity_counts_json(g.by_severity)}


def overview_json(o: Overview) -> JSON:
    """Live findings by severity, per day, coverage of the last day, the worst groups."""
    return {
        "live": {"total": sum(o.live.values()), "by_severity": severity_counts_json(o.live)},
        "trend": [{"day": d.day.isoformat(), "live": d.live} for d in o.trend],
        "coverage": {
            "checked": o.coverage.checked,
            "unverified": [
                {
                    **endpoint_result_json(r),
                    "endpoint": (
                        endpoint_json(o.coverage.endpoints[r.endpoint_id])
                        if r.endpoint_id in o.coverage.endpoints
                        else None
                    ),
                }
                for r in o.coverage.unverified
            ],
        },
        "worst_owners": [group_json(g) for g in o.worst_owners],
        "worst_tags": [group_json(g) for g in o.worst_tags],
    }
