"""Findings: a misconfiguration of one endpoint, with evidence and a stable fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from scanner.core.headers import Headers
from scanner.core.severity import Severity

FINGERPRINT_VERSION = "fp1"


class Category(StrEnum):
    """What kind of harm a rule is about."""

    EXPOSURE = "exposure"  # an untrusted origin can read what it should not
    BREAKAGE = "breakage"  # a legitimate front end cannot read what it needs
    HARDENING = "hardening"  # defence in depth, caching, hygiene


@dataclass(frozen=True, slots=True)
class Evidence:
    """One exchange that proves (part of) a finding: exactly what was sent and received."""

    probe_key: str
    origin: str
    origin_kind: str
    method: str
    url: str
    request_headers: Headers
    status: int | None
    response_headers: Headers
    error: str | None = None
    verdict: str = ""  # the browser's verdict in words, e.g. "readable with credentials"
    # Every line of the response head as received, when the browser's reading
    # of it was lenient (a line skipped, a name trimmed); empty otherwise.
    response_raw_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired on one endpoint.

    ``origin_class`` is the class of what proved it (a VariantKind value, or an
    aspect such as ``method``), never an attacker string: with the endpoint and
    rule id it makes the fingerprint, stable across runs.
    """

    rule_id: str
    severity: Severity
    category: Category
    title: str
    endpoint_method: str
    endpoint_url: str
    origin_class: str
    summary: str
    evidence: tuple[Evidence, ...] = ()
    credentialed: bool = False
    related: tuple[str, ...] = field(default=())  # other origin classes the same root cause covers

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.endpoint_method, self.endpoint_url, self.rule_id, self.origin_class)


def fingerprint(method: str, url: str, rule_id: str, origin_class: str) -> str:
    """``fp1:`` + SHA-256 of the stable identity: endpoint, rule, origin class."""
    material = "\n".join((method.upper(), url, rule_id, origin_class)).encode()
    return f"{FINGERPRINT_VERSION}:{hashlib.sha256(material).hexdigest()[:32]}"
