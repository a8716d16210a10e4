"""Severities, their order, and what they map to in other tools."""

from __future__ import annotations

from enum import StrEnum

from scanner.errors import InputError


class Severity(StrEnum):
    """How bad a finding is, by real exploitability.

    critical: an untrusted origin can read responses *with the user's credentials*.
    high:     an untrusted origin can read a non-public endpoint without credentials,
              or a legitimate front end is broken outright.
    medium:   exploitable only with extra conditions (a cache, a network attacker,
              a subdomain takeover), or a partial breakage.
    low:      weakens defence in depth.
    info:     worth knowing, not a defect by itself.
    """

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InputError(f"unknown severity {text!r}: expected one of {names}") from None

    @property
    def security_severity(self) -> str:
        """SARIF ``security-severity`` (GitHub buckets: >=9 critical, >=7 high, >=4 medium)."""
        return {"critical": "9.3", "high": "7.5", "medium": "5.3", "low": "3.1", "info": "0.0"}[
            self.value
        ]


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}
