"""Webhook signatures: Standard Webhooks ``v1`` (HMAC-SHA256) and GitHub's ``X-Hub-Signature-256``.

Standard Webhooks 1.0 (``standard-webhooks/standard-webhooks``, spec/standard-webhooks.md):

- a secret is 24 to 64 random bytes, shown to users as ``whsec_`` + base64;
- the signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``;
- ``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC>``, one
  per secret: during a rotation both the old and the new secret sign, so a
  receiver holding either one keeps verifying (zero-downtime rotation);
- receivers compare in constant time and reject timestamps outside a
  tolerance (5 minutes here), which bounds replays.

GitHub style (``X-Hub-Signature-256: sha256=<hex HMAC of the raw body>``) has
no timestamp and no id, so it does not stop replays; we send it only as an
extra for receivers that understand nothing else. Its key is the secret *as
the user pastes it* (the ``whsec_...`` text, UTF-8), because that is what
GitHub-style verifiers feed to HMAC (see :attr:`WebhookSecret.github_key`).

Everything here is pure and synchronous; the clock (``now``) is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from secrets import token_bytes

from scanner.core.hooks import (
    MAX_SECRET_BYTES,
    MIN_SECRET_BYTES,
    SECRET_PREFIX,
    check_secret_key,
    parse_secret,
    serialize_secret,
)
from scanner.errors import InputError

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "WebhookSecret",
    "github_signature",
    "sign_standard",
    "signature_header",
    "verify_github",
    "verify_standard",
]

DEFAULT_SECRET_BYTES = 32
DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock
SIGNATURE_VERSION = "v1"
GITHUB_PREFIX = "sha256="


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """A Standard Webhooks signing secret: 24 to 64 bytes, one per hook.

    ``key`` never appears in ``repr`` (delivery logs and tracebacks print
    values); :attr:`key_id` names the secret without revealing it.
    """

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_secret_key(self.key)

    @classmethod
    def generate(cls, size: int = DEFAULT_SECRET_BYTES) -> WebhookSecret:
        """A new secret of ``size`` bytes from the operating system's CSPRNG."""
        return cls(token_bytes(size))

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """``whsec_<base64>`` -> WebhookSecret; InputError naming what is wrong.

        Standard base64 with padding, as the spec's libraries print it;
        surrounding whitespace (a copy-paste) is ignored.
        """
        return cls(parse_secret(text))

    def serialize(self) -> str:
        """The secret as users see and paste it: ``whsec_`` + base64. Handle as a secret."""
        return serialize_secret(self.key)

    @property
    def github_key(self) -> bytes:
        """The HMAC key for ``X-Hub-Signature-256``: the serialized secret's UTF-8 bytes.

        GitHub-style receivers are configured with a string and use its bytes
        as the key, so that is the only key they can reproduce.
        """
        return self.serialize().encode("ascii")

    @property
    def key_id(self) -> str:
        """A short, non-secret name for this secret (hex of a hash), for logs and rotation."""
        return hashlib.sha256(b"cors-scanner webhook secret id\x00" + self.key).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"WebhookSecret(key_id={self.key_id!r})"


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _check_message_id(msg_id: str) -> None:
    # The id is part of the signed content, delimited by '.': an id holding a
    # '.' would let one (id, timestamp) pair pose as another.
    if not isinstance(msg_id, str) or not msg_id or not msg_id.isascii():
        raise InputError("webhook-id: expected a non-empty ASCII string")
    if any(c == "." or c.isspace() or c == "," for c in msg_id):
        raise InputError("webhook-id: must not contain '.', ',' or whitespace")


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise InputError("webhook-timestamp: expected integer Unix seconds >= 0")


def sign_standard(secret: WebhookSecret, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` (Standard Webhooks).

    ``timestamp`` is integer Unix seconds of *this attempt*; ``body`` the exact
    bytes sent. InputError if ``msg_id`` holds '.', ',' or whitespace.
    """
    _check_message_id(msg_id)
    _check_timestamp(timestamp)
    digest = hmac.new(secret.key, _signed_content(msg_id, timestamp, body), hashlib.sha256)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest.digest()).decode('ascii')}"


def signature_header(
    secrets: Sequence[WebhookSecret], msg_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` per secret, space-separated.

    Pass the current secret first and, during a rotation's grace period, the
    previous one too. Duplicates are signed once. InputError if empty.
    """
    if not secrets:
        raise InputError("webhook-signature: at least one secret is needed")
    unique = list(dict.fromkeys(secrets))
    return " ".join(sign_standard(s, msg_id, timestamp, body) for s in unique)


def verify_standard(
    header_value: str,
    secrets: Sequence[WebhookSecret],
    msg_id: str,
    timestamp: int | str,
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """True when some ``v1`` signature in ``header_value`` matches some secret, in time.

    For receivers (and our tests). ``timestamp`` is the ``webhook-timestamp``
    header (text of ASCII digits, or an int); ``now`` the receiver's clock in
    Unix seconds; timestamps more than ``tolerance`` seconds away from ``now``
    in either direction are rejected (replays, clock tricks). Signature
    versions other than ``v1`` are skipped. Never raises on malformed input:
    anything unexpected is simply not valid. Comparisons are constant time.
    """
    if isinstance(timestamp, str):
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 15:
            return False
        timestamp = int(timestamp)
    try:
        _check_message_id(msg_id)
        _check_timestamp(timestamp)
    except InputError:
        return False
    if abs(now - timestamp) > tolerance or not isinstance(header_value, str):
        return False
    candidates: list[bytes] = []
    for entry in header_value.split():
        version, sep, encoded = entry.partition(",")
        if sep and version == SIGNATURE_VERSION:
            candidates.append(encoded.encode("ascii", "replace"))
    if not candidates:
        return False
    valid = False
    for secret in secrets:
        expected = sign_standard(secret, msg_id, timestamp, body).partition(",")[2]
        for candidate in candidates:
            # No early exit: the time taken does not depend on which one matched.
            valid |= hmac.compare_digest(candidate, expected.encode("ascii"))
    return valid


def github_signature(secret: bytes, body: bytes) -> str:
    """``sha256=<lowercase hex HMAC-SHA256 of body>``, the ``X-Hub-Signature-256`` value."""
    return GITHUB_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github(header_value: str, secret: bytes, body: bytes) -> bool:
    """True when ``header_value`` is ``sha256=<hex>`` of ``body`` under ``secret`` (constant time)."""
    if not isinstance(header_value, str) or not header_value.startswith(GITHUB_PREFIX):
        return False
    given = header_value[len(GITHUB_PREFIX) :].strip().lower().encode("ascii", "replace")
    expected = github_signature(secret, body)[len(GITHUB_PREFIX) :].encode("ascii")
    return hmac.compare_digest(given, expected)
