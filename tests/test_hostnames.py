"""The host adapter: the bundled Public Suffix List and UTS #46 host encoding."""

from __future__ import annotations

import pytest

from scanner.core.origin import Origin
from scanner.core.policy import Policy
from scanner.core.variants import PublicSuffixes
from scanner.errors import InvalidOrigin
from scanner.hostnames import PublicSuffixList, default_public_suffixes, uts46_host_encoder


@pytest.fixture(scope="module")
def psl() -> PublicSuffixList:
    return default_public_suffixes()


@pytest.mark.parametrize(
    ("host", "registrable"),
    [
        ("acme.com", "acme.com"),
        ("api.acme.com", "acme.com"),
        ("a.b.acme.co.uk", "acme.co.uk"),
        ("A.B.ACME.CO.UK", "acme.co.uk"),
        ("app.acme.com.", "acme.com."),
        # github.io is a (private) public suffix: every user's site is its own domain.
        ("x.github.io", "x.github.io"),
        ("a.x.github.io", "x.github.io"),
        ("bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("www.xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("foo.xn--p1ai", "foo.xn--p1ai"),
        # An unknown top-level domain follows the list's implicit "*" rule.
        ("a.b.corp-internal", "b.corp-internal"),
        ("co.uk", None),
        ("github.io", None),
        ("com", None),
        ("localhost", None),
        ("127.0.0.1", None),
        ("[::1]", None),
        ("::1", None),
        ("", None),
        (".", None),
        ("a..acme.com", None),
    ],
)
def test_registrable_domain(psl: PublicSuffixList, host: str, registrable: str | None) -> None:
    assert psl.registrable_domain(host) == registrable


@pytest.mark.parametrize(
    ("host", "suffix", "is_suffix"),
    [
        ("a.b.acme.co.uk", "co.uk", False),
        ("co.uk", "co.uk", True),
        ("x.github.io", "github.io", False),
        ("github.io", "github.io", True),
        ("10.0.0.1", None, False),
    ],
)
def test_public_suffix(
    psl: PublicSuffixList, host: str, suffix: str | None, is_suffix: bool
) -> None:
    assert psl.public_suffix(host) == suffix
    assert psl.is_public_suffix(host) is is_suffix


def test_the_list_is_built_once_and_satisfies_the_core_protocol() -> None:
    assert default_public_suffixes() is default_public_suffixes()
    suffixes: PublicSuffixes = default_public_suffixes()
    assert suffixes.registrable_domain("app.acme.com") == "acme.com"


def test_a_custom_list_text_replaces_the_bundled_one() -> None:
    psl = PublicSuffixList("example\n")
    assert psl.registrable_domain("a.b.example") == "b.example"
    assert psl.registrable_domain("example") is None


@pytest.mark.parametrize(
    ("host", "ascii_host"),
    [
        # UTS 46 non-transitional (Chromium): ß and ς are kept and punycoded,
        # where IDNA 2003 (the standard library's codec) maps them to ss and σ.
        ("faß.de", "xn--fa-hia.de"),
        ("FAß.DE", "xn--fa-hia.de"),
        ("βόλος.com", "xn--nxasmm1c.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("ＡＢＣ。com", "abc.com"),
        ("münchen.de.", "xn--mnchen-3ya.de."),
        ("a_b.bücher.de", "a_b.xn--bcher-kva.de"),
        ("acme.com", "acme.com"),
    ],
)
def test_uts46_host_encoder(host: str, ascii_host: str) -> None:
    assert uts46_host_encoder(host) == ascii_host


def test_uts46_is_the_one_mapping_of_internationalised_hosts() -> None:
    # IDNA 2003 (the standard library's codec) would give fass.de: a different host.
    assert "faß.de".encode("idna") == b"fass.de"
    assert (
        Origin.parse("https://faß.de", encode_host=uts46_host_encoder).serialize()
        == "https://xn--fa-hia.de"
    )
    policy = Policy.build(allowed_origins=["https://faß.de"], encode_host=uts46_host_encoder)
    assert policy.allows(Origin.parse("https://xn--fa-hia.de"))
    assert not policy.allows(Origin.parse("https://fass.de"))
    # The core has no second mapping to fall back on: it refuses and names the fix.
    with pytest.raises(InvalidOrigin, match="UTS #46"):
        Origin.parse("https://faß.de")


@pytest.mark.parametrize(
    "host",
    [
        "a\u200db.com",  # a joiner outside the context IDNA 2008 allows
        "\u0661ä.com",  # breaks the Bidi rule
        "ä" * 70 + ".de",  # label longer than 63 octets once encoded
        "-ä.de",  # hyphen at a label's edge (stricter than Chromium, see the docstring)
    ],
)
def test_uts46_host_encoder_rejects_invalid_names(host: str) -> None:
    with pytest.raises(InvalidOrigin, match="not a valid internationalised domain name"):
        uts46_host_encoder(host)


def test_invalid_name_in_an_origin_is_an_invalid_origin() -> None:
    with pytest.raises(InvalidOrigin):
        Origin.parse("https://a\u200db.com", encode_host=uts46_host_encoder)
