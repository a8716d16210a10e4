"""Origins as browsers parse and serialise them, and the allowlist patterns built on them."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.core.origin import DEFAULT_PORTS, Origin, host_key, masked_url
from scanner.core.policy import OriginPattern, Policy
from scanner.errors import InvalidOrigin, InvalidPolicy, InvalidURL

# -- parsing and serialisation, as the Origin header carries it -------------------


@pytest.mark.parametrize(
    ("text", "serialized"),
    [
        ("https://app.acme.com", "https://app.acme.com"),
        ("HTTPS://APP.Acme.COM", "https://app.acme.com"),
        ("http://acme.com:80", "http://acme.com"),
        ("https://acme.com:443", "https://acme.com"),
        ("https://acme.com:00443", "https://acme.com"),
        ("http://acme.com:443", "http://acme.com:443"),
        ("https://acme.com:80", "https://acme.com:80"),
        ("http://acme.com:8080", "http://acme.com:8080"),
        ("https://acme.com:", "https://acme.com"),
        ("http://a.example:0", "http://a.example:0"),
        ("https://acme.com.", "https://acme.com."),
        ("https://xn--bcher-kva.de", "https://xn--bcher-kva.de"),
        ("http://[::1]", "http://[::1]"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
        ("https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
        ("http://[1:0:0:2:0:0:0:3]", "http://[1:0:0:2::3]"),
        ("http://[1:0:2:3:4:5:6:7]", "http://[1:0:2:3:4:5:6:7]"),
        ("http://[::ffff:1.2.3.4]", "http://[::ffff:102:304]"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://0x7f.1", "http://127.0.0.1"),
        ("http://2130706433", "http://127.0.0.1"),
        ("http://0177.0.0.1", "http://127.0.0.1"),
        ("http://127.1", "http://127.0.0.1"),
        ("http://0x7F000001:3000", "http://127.0.0.1:3000"),
        ("http://1.2.3.4.", "http://1.2.3.4"),
        ("chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"),
        ("null", "null"),
    ],
)
def test_parse_serializes_as_browsers_do(text: str, serialized: str) -> None:
    assert Origin.parse(text).serialize() == serialized


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://app.acme.com/", "no path"),
        ("https://app.acme.com/path", "no path"),
        ("https://app.acme.com?q=1", "no path"),
        ("https://app.acme.com#top", "no path"),
        ("https://user:pw@app.acme.com", "no user name"),
        ("https://user@app.acme.com", "no user name"),
        ("https://", "host is empty"),
        ("https://:443", "host is empty"),
        ("https://acme.com:65536", "out of range"),
        ("https://acme.com:12a", "not a number"),
        ("https://acme.com:-1", "not a number"),
        ("https://acme.com:８０", "not a number"),
        ("app.acme.com", "expected scheme://host"),
        ("://app.acme.com", "not a URL scheme"),
        ("//app.acme.com", "expected scheme://host"),
        ("1http://app.acme.com", "not a URL scheme"),
        ("https://app acme.com", "no spaces"),
        ("https://app.acme.com\r\nX: 1", "no spaces"),
        ("https://a<b.com", "cannot have"),
        ("https://a|b.com", "cannot have"),
        ("https://a^b.com", "cannot have"),
        ("https://a%41.com", "cannot have"),
        ("https://a..com", "empty label"),
        ("https://.acme.com", "empty label"),
        ("https://" + "a" * 64 + ".com", "too long"),
        ("https://[::1", "unterminated"),
        ("https://[::1]x", "after the IPv6"),
        ("https://[::g]", "not an IPv6"),
        ("https://[fe80::1%eth0]", "zone"),
        ("http://256.0.0.1", "out of range"),
        ("http://1.2.3.4.5", "at most four"),
        ("http://acme.1", "not an IPv4 number"),
        ("http://09.1.1.1", "not an IPv4 number"),
        (" https://app.acme.com", "no spaces"),
        ("NULL", "expected scheme://host"),
        ("", "expected scheme://host"),
    ],
)
def test_parse_rejects_what_is_not_an_origin(text: str, message: str) -> None:
    with pytest.raises(InvalidOrigin, match=message):
        Origin.parse(text)


@pytest.mark.parametrize(
    ("text", "serialized"),
    [
        ("https://app.acme.com/", "https://app.acme.com"),
        ("  HTTPS://App.Acme.com/  ", "https://app.acme.com"),
        ("https://app.acme.com:443/", "https://app.acme.com"),
        (" null ", "null"),
    ],
)
def test_lenient_parse_accepts_what_people_write_in_allowlists(text: str, serialized: str) -> None:
    assert Origin.parse(text, lenient=True).serialize() == serialized


@pytest.mark.parametrize(
    "text", ["https://app.acme.com//", "https://app.acme.com/x", "https://a@app.acme.com/"]
)
def test_lenient_parse_still_rejects_paths_and_userinfo(text: str) -> None:
    with pytest.raises(InvalidOrigin):
        Origin.parse(text, lenient=True)


def test_parse_uses_the_injected_host_encoder() -> None:
    # One mapping of internationalised hosts (UTS 46, scanner.hostnames) is given to
    # the core; without it the core refuses rather than guess with another mapping.
    encoded = Origin.parse("https://faß.de", encode_host=lambda h: "xn--fa-hia.de")
    assert encoded.host == "xn--fa-hia.de"
    with pytest.raises(InvalidOrigin, match="UTS #46"):
        Origin.parse("https://faß.de")
    with pytest.raises(InvalidURL, match="UTS #46"):
        Origin.from_url("https://bücher.de/x")
    assert Origin.parse("https://xn--bcher-kva.de").host == "xn--bcher-kva.de"  # ASCII as is


def test_not_a_string_is_an_invalid_origin() -> None:
    with pytest.raises(InvalidOrigin, match="expected a string"):
        Origin.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.acme.com/v1/x?y=1#z", "https://api.acme.com"),
        ("HTTPS://API.ACME.COM:443/", "https://api.acme.com"),
        ("http://user:pw@127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_from_url_is_the_origin_a_page_there_sends(url: str, origin: str) -> None:
    assert Origin.from_url(url).serialize() == origin


@pytest.mark.parametrize("url", ["/v1/x", "api.acme.com/v1", "https:///x", "https://a b.com/"])
def test_from_url_rejects_relative_and_broken_urls(url: str) -> None:
    with pytest.raises(InvalidURL):
        Origin.from_url(url)


def test_null_is_opaque_and_never_same_origin() -> None:
    null = Origin.parse("null")
    assert null.opaque
    assert null == Origin.null()
    assert not null.same_origin(Origin.null())


def test_same_origin_compares_effective_ports() -> None:
    assert Origin("https", "a.com", 443).same_origin(Origin.parse("https://a.com"))
    assert not Origin.parse("http://a.com").same_origin(Origin.parse("https://a.com"))
    assert not Origin.parse("https://a.com").same_origin(Origin.parse("https://a.com:8443"))


@pytest.mark.parametrize(
    ("origin", "scheme", "expected"),
    [
        ("https://app.acme.com", "http", "http://app.acme.com"),
        ("https://app.acme.com:8443", "http", "http://app.acme.com:8443"),
        # A port that is the new scheme's default disappears, as in a browser.
        ("https://app.acme.com:80", "http", "http://app.acme.com"),
        ("http://app.acme.com:443", "https", "https://app.acme.com"),
    ],
)
def test_with_scheme_serialises_canonically(origin: str, scheme: str, expected: str) -> None:
    changed = Origin.parse(origin).with_scheme(scheme)
    assert changed.serialize() == expected
    assert Origin.parse(expected) == changed


def test_ip_and_secure_properties() -> None:
    assert Origin.parse("http://0x7f.1").is_ip
    assert Origin.parse("http://[::1]").is_ip
    assert not Origin.parse("https://acme.com").is_ip
    assert Origin.parse("wss://acme.com").is_secure
    assert not Origin.parse("http://acme.com").is_secure


# -- properties ------------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,20}[a-z0-9])?", fullmatch=True)
# The last label of a domain must not look like a number, or the URL standard
# parses the host as IPv4.
_TLD = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
_DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(_LABEL, max_size=4), _TLD
)
_IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_IPV6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
_HOST = st.one_of(_DOMAIN, _IPV4, _IPV6)
_SCHEME = st.sampled_from(["http", "https", "ws", "wss"])
_PORT = st.one_of(st.none(), st.integers(0, 65535))


def _text(scheme: str, host: str, port: int | None, *, upper: bool = False) -> str:
    host = host.upper() if upper else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


@given(_SCHEME, _HOST, _PORT, st.booleans())
def test_parse_serialize_round_trips(scheme: str, host: str, port: int | None, upper: bool) -> None:
    origin = Origin.parse(_text(scheme, host, port, upper=upper))
    text = origin.serialize()
    assert Origin.parse(text) == origin
    assert Origin.parse(text).serialize() == text  # idempotent


@given(_SCHEME, _HOST, _PORT, st.booleans())
def test_serialisation_is_canonical(scheme: str, host: str, port: int | None, upper: bool) -> None:
    text = Origin.parse(_text(scheme, host, port, upper=upper)).serialize()
    assert not any(c in string.ascii_uppercase for c in text)
    assert not any(c in string.whitespace for c in text)
    assert text.isascii()
    rest = text.partition("://")[2]
    assert not set(rest) & set("/?#")
    assert not text.endswith(f":{DEFAULT_PORTS[scheme]}")


@given(_SCHEME, _HOST)
def test_default_port_never_appears(scheme: str, host: str) -> None:
    explicit = Origin.parse(_text(scheme, host, DEFAULT_PORTS[scheme]))
    assert explicit.port is None
    assert explicit == Origin.parse(_text(scheme, host, None))
    assert explicit.serialize() == Origin.parse(_text(scheme, host, None)).serialize()


@given(_SCHEME, _HOST, _PORT)
def test_lenient_parse_agrees_with_strict_on_serialised_origins(
    scheme: str, host: str, port: int | None
) -> None:
    text = Origin.parse(_text(scheme, host, port)).serialize()
    assert Origin.parse(text + "/", lenient=True) == Origin.parse(text)


# -- allowlist patterns and policies ----------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "origin", "matches"),
    [
        ("https://*.acme.com", "https://app.acme.com", True),
        ("https://*.acme.com", "https://a.b.acme.com", True),
        ("https://*.acme.com", "https://acme.com", False),
        ("https://*.acme.com", "https://evilacme.com", False),
        ("https://*.acme.com", "http://app.acme.com", False),
        ("https://*.acme.com", "https://app.acme.com:8443", False),
        ("https://*.acme.com:8443", "https://app.acme.com:8443", True),
        ("https://*.acme.com", "https://app.acme.com.attacker.example", False),
        ("https://app.acme.com", "https://app.acme.com", True),
        ("https://app.acme.com/", "https://app.acme.com", True),
        ("HTTPS://APP.ACME.COM:443", "https://app.acme.com", True),
        ("https://app.acme.com", "https://x.app.acme.com", False),
        ("null", "null", True),
        ("null", "https://app.acme.com", False),
        ("https://app.acme.com", "null", False),
    ],
)
def test_origin_pattern_matching(pattern: str, origin: str, matches: bool) -> None:
    assert OriginPattern.parse(pattern).matches(Origin.parse(origin)) is matches


def test_wildcard_pattern_names_no_single_origin() -> None:
    wildcard = OriginPattern.parse("https://*.Acme.com")
    assert wildcard.any_subdomain
    assert wildcard.origin is None
    assert str(wildcard) == "https://*.acme.com"
    assert OriginPattern.parse("https://app.acme.com").origin == Origin.parse(
        "https://app.acme.com"
    )


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("*", "public=true"),
        ("https://*", "'\\*' stands only for leading labels"),
        ("https://app.*.com", "'\\*' stands only for leading labels"),
        ("https://*.*.acme.com", "'\\*' stands only for leading labels"),
        ("*.acme.com", "'\\*' stands only for leading labels"),
        ("https://*.127.0.0.1", "no subdomains"),
        ("https://*.acme.com/path", "no path"),
        ("https://app.acme.com/path", "no path"),
        ("app.acme.com", "expected scheme://host"),
    ],
)
def test_bad_patterns_are_rejected_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        OriginPattern.parse(pattern)


def test_policy_build_validates_and_dedupes() -> None:
    policy = Policy.build(
        allowed_origins=["https://app.acme.com", "https://APP.acme.com/", "https://*.acme.org"],
        allowed_methods=["GET", "PUT", "GET"],
        allowed_headers=["Content-Type", "content-type"],
        max_age=600,
    )
    assert [str(p) for p in policy.allowed_origins] == [
        "https://app.acme.com",
        "https://*.acme.org",
    ]
    assert policy.allowed_methods == ("GET", "PUT")
    assert policy.allowed_headers == ("content-type",)
    assert policy.exact_origins == (Origin.parse("https://app.acme.com"),)
    assert policy.allows(Origin.parse("https://x.acme.org"))
    assert not policy.allows(Origin.parse("https://acme.org"))
    assert policy.declared


def test_public_policy_with_credentials_is_rejected() -> None:
    with pytest.raises(InvalidPolicy, match="cannot also allow credentials"):
        Policy.build(public=True, allow_credentials=True)


def test_star_as_an_allowed_origin_points_to_public() -> None:
    with pytest.raises(InvalidPolicy, match="set public=true"):
        Policy.build(allowed_origins=["*"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allowed_methods": ["GE T"]},
        {"allowed_headers": ["X-Bad:"]},
        {"exposed_headers": [""]},
        {"max_age": -1},
    ],
)
def test_policy_build_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidPolicy):
        Policy.build(**kwargs)  # type: ignore[arg-type]


def test_empty_policy_declares_nothing() -> None:
    policy = Policy.build()
    assert not policy.declared
    assert not policy.allows(Origin.parse("https://acme.com"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:hunter2@api.acme.com/x", "https://***@api.acme.com/x"),
        ("https://bob@api.acme.com", "https://***@api.acme.com"),
        ("https://api.acme.com/a@b", "https://api.acme.com/a@b"),
    ],
)
def test_masked_url_never_shows_a_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_url_errors_do_not_echo_the_password() -> None:
    with pytest.raises(InvalidURL) as info:
        Origin.from_url("https://bob:hunter2@api.acme.com/a b")
    assert "hunter2" not in str(info.value)


# -- the host key: what per-host politeness and the work items' host locks share ------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://API.Acme.com/v1?x=1", "https://api.acme.com:443"),
        ("http://acme.com/", "http://acme.com:80"),
        ("http://acme.com:8080/", "http://acme.com:8080"),
        ("https://acme.com:443/", "https://acme.com:443"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]:80"),  # IPv6 as the URL standard writes it
        ("https://[2001:DB8::1]/", "https://[2001:db8::1]:443"),
        ("https://bücher.de/", "https://bücher.de:443"),  # a scan's URL is probed as given
    ],
)
def test_host_key(url: str, key: str) -> None:
    assert host_key(url) == key


@pytest.mark.parametrize("url", ["http:///path", "no-scheme", "https://a.example:99999/"])
def test_host_key_refuses_urls_without_a_host_or_port(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)no host|port"):
        host_key(url)
