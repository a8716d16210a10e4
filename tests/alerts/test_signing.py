"""Signatures: the published test vectors, secrets, rotation, and what receivers reject."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from scanner.alerts.signing import (
    WebhookSecret,
    github_signature,
    sign_standard,
    signature_header,
    verify_github,
    verify_standard,
)
from scanner.errors import InputError

# Standard Webhooks reference libraries' test vector
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py, test_sign_function).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub's documented example ("Validating webhook deliveries").
GH_SECRET = b"It's a Secret to Everybody"
GH_PAYLOAD = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_standard_webhooks_reference_vector() -> None:
    secret = WebhookSecret.parse(SW_SECRET)
    assert sign_standard(secret, SW_MSG_ID, SW_TIMESTAMP, SW_PAYLOAD) == SW_SIGNATURE
    assert verify_standard(
        SW_SIGNATURE, [secret], SW_MSG_ID, str(SW_TIMESTAMP), SW_PAYLOAD, now=SW_TIMESTAMP
    )


def test_github_published_vector() -> None:
    assert github_signature(GH_SECRET, GH_PAYLOAD) == GH_SIGNATURE
    assert verify_github(GH_SIGNATURE, GH_SECRET, GH_PAYLOAD)
    assert verify_github(GH_SIGNATURE.upper().replace("SHA256=", "sha256="), GH_SECRET, GH_PAYLOAD)
    assert not verify_github(GH_SIGNATURE, GH_SECRET, GH_PAYLOAD + b" ")
    assert not verify_github(GH_SIGNATURE, b"another secret", GH_PAYLOAD)
    assert not verify_github(GH_SIGNATURE.removeprefix("sha256="), GH_SECRET, GH_PAYLOAD)
    assert not verify_github("sha1=" + "0" * 40, GH_SECRET, GH_PAYLOAD)


def test_signature_matches_an_independent_hmac() -> None:
    secret = WebhookSecret.generate()
    body = b'{"type":"finding.new"}'
    signature = sign_standard(secret, "msg_abc", 1700000000, body)
    expected = hmac.new(secret.key, b"msg_abc.1700000000." + body, hashlib.sha256).digest()
    assert signature == "v1," + base64.b64encode(expected).decode()


def test_generated_secrets_are_random_and_round_trip() -> None:
    first, second = WebhookSecret.generate(), WebhookSecret.generate()
    assert first != second
    assert len(first.key) == 32
    text = first.serialize()
    assert text.startswith("whsec_")
    assert WebhookSecret.parse(text) == first
    assert WebhookSecret.parse(f"  {text}\n") == first  # pasted with whitespace
    assert len(WebhookSecret.generate(64).key) == 64


def test_secret_never_shows_in_repr() -> None:
    secret = WebhookSecret.generate()
    shown = repr(secret)
    assert base64.b64encode(secret.key).decode() not in shown
    assert secret.key_id in shown
    assert secret.key_id != WebhookSecret.generate().key_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "'whsec_' prefix"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "not valid base64"),  # bad padding
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes, got 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes, got 65"),
        ("whsec_ÄÖÜ", "not valid base64"),
    ],
)
def test_bad_secrets_are_refused_with_a_clear_reason(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        WebhookSecret.parse(text)


def test_generate_refuses_sizes_outside_the_spec() -> None:
    with pytest.raises(InputError, match="24 to 64 bytes"):
        WebhookSecret.generate(16)


@pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg,1"])
def test_message_ids_that_would_confuse_the_signed_content_are_refused(msg_id: str) -> None:
    secret = WebhookSecret.generate()
    with pytest.raises(InputError, match="webhook-id"):
        sign_standard(secret, msg_id, 1700000000, b"{}")


def test_rotation_signs_with_both_secrets_and_either_verifies() -> None:
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    body = b'{"type":"hook.test"}'
    header = signature_header([new, old], "msg_rot", 1700000000, body)
    entries = header.split(" ")
    assert entries == [
        sign_standard(new, "msg_rot", 1700000000, body),
        sign_standard(old, "msg_rot", 1700000000, body),
    ]
    # A receiver that has not switched yet, one that has, and one holding both.
    for held in ([old], [new], [old, new]):
        assert verify_standard(header, held, "msg_rot", 1700000000, body, now=1700000000)
    stranger = WebhookSecret.generate()
    assert not verify_standard(header, [stranger], "msg_rot", 1700000000, body, now=1700000000)


def test_signature_header_needs_a_secret_and_signs_duplicates_once() -> None:
    secret = WebhookSecret.generate()
    with pytest.raises(InputError):
        signature_header([], "msg_x", 1, b"")
    assert len(signature_header([secret, secret], "msg_x", 1, b"").split()) == 1


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        (1700000000, True),
        (1700000300, True),  # exactly at the tolerance
        (1699999700, True),
        (1700000301, False),  # stale: a replay five minutes later
        (1699999699, False),  # from the future
    ],
)
def test_timestamps_outside_the_tolerance_are_rejected(now: int, valid: bool) -> None:
    secret = WebhookSecret.generate()
    header = signature_header([secret], "msg_t", 1700000000, b"{}")
    assert verify_standard(header, [secret], "msg_t", "1700000000", b"{}", now=now) is valid


def test_verification_rejects_tampering_and_garbage_without_raising() -> None:
    secret = WebhookSecret.generate()
    body = b'{"a":1}'
    good = signature_header([secret], "msg_g", 1700000000, body)

    def check(
        header: str, msg_id: str = "msg_g", ts: str = "1700000000", data: bytes = body
    ) -> bool:
        return verify_standard(header, [secret], msg_id, ts, data, now=1700000000)

    assert check(good)
    assert not check(good, data=b'{"a":2}')
    assert not check(good, msg_id="msg_h")
    assert not check(good, ts="1700000001")
    assert not check(good.replace("v1,", "v2,"))  # other versions are not ours
    assert not check("")
    assert not check("v1,")
    assert not check("v1,***")
    assert not check("garbage " * 100)
    assert not check(good, ts="17e8")
    assert not check(good, ts="-1700000000")
    assert not check(good, ts="１７００")  # non-ASCII digits
    assert not check(good, msg_id="msg.g")
    # Extra entries (another scheme, an old signature) do not hurt a valid one.
    assert check(f"v1a,AAAA v1,{'A' * 44} {good}")
