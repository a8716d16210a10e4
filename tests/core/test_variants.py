"""The Origin values an endpoint is probed with, and what each would prove."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.origin import Origin
from scanner.core.policy import Policy
from scanner.core.variants import (
    DEFAULT_SPECIAL_CHARS,
    ProbeOrigin,
    VariantKind,
    VariantSettings,
    probe_origins,
)
from scanner.errors import ConfigError, InputError, InvalidURL
from scanner.hostnames import PublicSuffixList, default_public_suffixes

TOKEN = "tok1z"
ENDPOINT = "https://api.acme.com/v1/x"
EVIDENCE_KINDS = {
    VariantKind.ALLOWED_TRAILING_SLASH,
    VariantKind.ALLOWED_CASE,
    VariantKind.ALLOWED_PORT,
}


@pytest.fixture(scope="module")
def psl() -> PublicSuffixList:
    return default_public_suffixes()


def generate(
    psl: PublicSuffixList,
    allowed: list[str] | tuple[str, ...] = (),
    *,
    endpoint: str = ENDPOINT,
    token: str = TOKEN,
    variant_settings: VariantSettings | None = None,
) -> tuple[ProbeOrigin, ...]:
    policy = Policy.build(allowed_origins=allowed)
    if variant_settings is None:
        return probe_origins(endpoint, policy, suffixes=psl, token=token)
    return probe_origins(endpoint, policy, suffixes=psl, token=token, settings=variant_settings)


def by_value(origins: tuple[ProbeOrigin, ...]) -> dict[str, ProbeOrigin]:
    return {o.value: o for o in origins}


def values_of(origins: tuple[ProbeOrigin, ...], kind: VariantKind) -> list[str]:
    return [o.value for o in origins if o.kind is kind]


# -- the issue's example: api.acme.com, allowing app.acme.com and *.partner.co.uk ----

ISSUE_POLICY = ("https://app.acme.com", "https://*.partner.co.uk")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (f"https://{TOKEN}.attacker.example", VariantKind.ARBITRARY),
        ("null", VariantKind.NULL),
        ("https://api.acme.com", VariantKind.SELF),
        ("https://app.acme.com.attacker.example", VariantKind.PREFIX),
        ("https://acme.com.attacker.example", VariantKind.PREFIX),
        ("https://partner.co.uk.attacker.example", VariantKind.PREFIX),
        (f"https://{TOKEN}acme.com", VariantKind.SUFFIX),
        (f"https://{TOKEN}-acme.com", VariantKind.SUFFIX),
        (f"https://{TOKEN}partner.co.uk", VariantKind.SUFFIX),
        ("https://appxacme.com", VariantKind.UNESCAPED_DOT),
        ("https://app.acmexcom", VariantKind.UNESCAPED_DOT),
        ("https://partnerxco.uk", VariantKind.UNESCAPED_DOT),
        (f"https://{TOKEN}.acme.com", VariantKind.SUBDOMAIN),
        (f"https://{TOKEN}.app.acme.com", VariantKind.SUBDOMAIN),
        ("http://app.acme.com", VariantKind.HTTP_DOWNGRADE),
        ("http://api.acme.com", VariantKind.HTTP_DOWNGRADE),
        (f"http://{TOKEN}.partner.co.uk", VariantKind.HTTP_DOWNGRADE),
        ("https://app.acme.com_.attacker.example", VariantKind.SPECIAL_CHARS),
        ("https://app.acme.com`.attacker.example", VariantKind.SPECIAL_CHARS),
        ("https://app.acme.com,.attacker.example", VariantKind.SPECIAL_CHARS),
        (f"https://{TOKEN}.github.io", VariantKind.THIRD_PARTY),
        ("https://codepen.io", VariantKind.THIRD_PARTY),
        ("http://localhost:3000", VariantKind.LOCALHOST),
        ("http://127.0.0.1:8080", VariantKind.LOCALHOST),
    ],
)
def test_attacker_variants_of_the_issue_example(
    psl: PublicSuffixList, value: str, kind: VariantKind
) -> None:
    origin = by_value(generate(psl, ISSUE_POLICY))[value]
    assert origin.kind is kind
    assert origin.browser_sendable
    assert not origin.trusted
    assert origin.note


def test_allowed_origins_are_probed_as_trusted(psl: PublicSuffixList) -> None:
    origins = generate(psl, ISSUE_POLICY)
    allowed = [o for o in origins if o.kind is VariantKind.ALLOWED]
    assert [o.value for o in allowed] == [
        "https://app.acme.com",
        f"https://{TOKEN}.partner.co.uk",  # one concrete member of the wildcard
    ]
    assert all(o.trusted and o.browser_sendable for o in allowed)
    # Legitimate origins come first: the planner takes its reflector from the front.
    assert origins[0].value == "https://app.acme.com"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://app.acme.com/", VariantKind.ALLOWED_TRAILING_SLASH),
        ("https://APP.ACME.COM", VariantKind.ALLOWED_CASE),
        ("https://app.acme.com:443", VariantKind.ALLOWED_PORT),
    ],
)
def test_evidence_variants_are_not_browser_sendable(
    psl: PublicSuffixList, value: str, kind: VariantKind
) -> None:
    origin = by_value(generate(psl, ISSUE_POLICY))[value]
    assert origin.kind is kind
    assert not origin.browser_sendable
    assert not origin.trusted
    assert origin.base == "https://app.acme.com"


def test_variants_name_the_trusted_origin_they_attack(psl: PublicSuffixList) -> None:
    found = by_value(generate(psl, ISSUE_POLICY))
    assert found["https://app.acme.com.attacker.example"].base == "https://app.acme.com"
    assert found["https://partnerxco.uk"].base == "https://*.partner.co.uk"
    # One label under the registrable domain of the allowed origin.
    assert found[f"https://{TOKEN}.acme.com"].base == "https://app.acme.com"


def test_special_chars_forbidden_in_hosts_are_evidence_only(psl: PublicSuffixList) -> None:
    found = by_value(generate(psl, ISSUE_POLICY))
    specials = [o for o in found.values() if o.kind is VariantKind.SPECIAL_CHARS]
    assert len(specials) == len(DEFAULT_SPECIAL_CHARS)
    # The URL standard forbids | and ^ in a host: no browser sends them.
    assert not found["https://app.acme.com|.attacker.example"].browser_sendable
    assert not found["https://app.acme.com^.attacker.example"].browser_sendable
    assert found["https://app.acme.com!.attacker.example"].browser_sendable


def test_typical_count_is_bounded(psl: PublicSuffixList) -> None:
    assert 60 <= len(generate(psl, ISSUE_POLICY)) <= 75  # 71 with the default settings
    three = generate(
        psl, ["https://app.acme.com", "https://admin.acme.com", "https://www.acme.org"]
    )
    assert len(three) <= 90
    assert len(generate(psl)) <= 60


# -- invariants ----------------------------------------------------------------------


def test_values_are_unique(psl: PublicSuffixList) -> None:
    counts = Counter(o.value for o in generate(psl, ISSUE_POLICY))
    assert [v for v, n in counts.items() if n > 1] == []


def test_generation_is_deterministic(psl: PublicSuffixList) -> None:
    assert generate(psl, ISSUE_POLICY) == generate(psl, ISSUE_POLICY)


def test_the_token_only_changes_attacker_hosts(psl: PublicSuffixList) -> None:
    one = generate(psl, ISSUE_POLICY, token="aaa1")
    other = generate(psl, ISSUE_POLICY, token="bbb2")
    assert [o.kind for o in one] == [o.kind for o in other]
    assert [o.value.replace("aaa1", "bbb2") for o in one] == [o.value for o in other]
    assert "https://aaa1.attacker.example" in by_value(one)


@pytest.mark.parametrize("token", ["", "ABC", "a.b", "a b", "tok\r\n", "a" * 33, "ü"])
def test_bad_tokens_are_refused(psl: PublicSuffixList, token: str) -> None:
    with pytest.raises(InputError, match="token"):
        generate(psl, token=token)


@pytest.mark.parametrize("endpoint", ["/v1/x", "ftp://files.acme.com/x", "https://a b.com/"])
def test_endpoint_must_be_an_http_url(psl: PublicSuffixList, endpoint: str) -> None:
    with pytest.raises(InvalidURL):
        generate(psl, endpoint=endpoint)


# -- the policy decides what is trusted --------------------------------------------


def test_empty_policy_still_attacks_the_endpoints_domain(psl: PublicSuffixList) -> None:
    origins = generate(psl)
    found = by_value(origins)
    assert values_of(origins, VariantKind.ALLOWED) == []
    assert not any(o.kind in EVIDENCE_KINDS for o in origins)
    assert found["https://acme.com.attacker.example"].kind is VariantKind.PREFIX
    assert found[f"https://{TOKEN}acme.com"].kind is VariantKind.SUFFIX
    assert found[f"https://{TOKEN}-acme.com"].kind is VariantKind.SUFFIX
    assert found["https://acmexcom"].kind is VariantKind.UNESCAPED_DOT
    assert found[f"https://{TOKEN}.acme.com"].kind is VariantKind.SUBDOMAIN
    assert found["http://api.acme.com"].kind is VariantKind.HTTP_DOWNGRADE
    assert found["https://acme.com_.attacker.example"].kind is VariantKind.SPECIAL_CHARS
    assert found["https://api.acme.com"].kind is VariantKind.SELF
    assert not any(o.trusted for o in origins)


def test_registrable_domain_under_co_uk(psl: PublicSuffixList) -> None:
    origins = generate(psl, endpoint="https://a.api.acme.co.uk/x")
    found = by_value(origins)
    assert found["https://acme.co.uk.attacker.example"].kind is VariantKind.PREFIX
    assert found[f"https://{TOKEN}acme.co.uk"].kind is VariantKind.SUFFIX
    assert found[f"https://{TOKEN}.acme.co.uk"].kind is VariantKind.SUBDOMAIN
    assert found["https://acmexco.uk"].kind is VariantKind.UNESCAPED_DOT
    # Never the public suffix itself: anyone can register tokco.uk-style names
    # only under the registrable domain's rules.
    assert f"https://{TOKEN}co.uk" not in found
    assert f"https://{TOKEN}.co.uk" not in found


def test_endpoint_on_a_public_suffix_host_uses_the_host(psl: PublicSuffixList) -> None:
    found = by_value(generate(psl, endpoint="https://acme.github.io/api"))
    assert found["https://acme.github.io.attacker.example"].kind is VariantKind.PREFIX
    assert found[f"https://{TOKEN}.acme.github.io"].kind is VariantKind.SUBDOMAIN
    assert found[f"https://{TOKEN}acme.github.io"].kind is VariantKind.SUFFIX


def test_ip_endpoint_gets_only_variants_that_are_origins(psl: PublicSuffixList) -> None:
    origins = generate(psl, endpoint="http://127.0.0.1:8080/x")
    found = by_value(origins)
    assert found["http://127.0.0.1:8080"].kind is VariantKind.SELF
    assert found["http://127.0.0.1.attacker.example"].kind is VariantKind.PREFIX
    assert values_of(origins, VariantKind.SUFFIX) == []
    assert values_of(origins, VariantKind.SUBDOMAIN) == []
    assert values_of(origins, VariantKind.UNESCAPED_DOT) == []
    assert_origins_are_well_formed(origins, Policy())


def test_the_allowlist_wins_a_duplicate(psl: PublicSuffixList) -> None:
    allowed = ["https://api.acme.com", "http://localhost:3000", "null"]
    found = by_value(generate(psl, allowed))
    for value in ("https://api.acme.com", "http://localhost:3000", "null"):
        assert found[value].kind is VariantKind.ALLOWED
        assert found[value].trusted


def test_self_is_trusted_only_when_allowed(psl: PublicSuffixList) -> None:
    assert not by_value(generate(psl))["https://api.acme.com"].trusted
    found = by_value(generate(psl, endpoint="http://127.0.0.1:3000/", allowed=["null"]))
    assert found["http://127.0.0.1:3000"].kind is VariantKind.SELF


def test_a_wildcard_over_the_domain_makes_subdomains_trusted(psl: PublicSuffixList) -> None:
    origins = generate(psl, ["https://*.acme.com"])
    found = by_value(origins)
    member = found[f"https://{TOKEN}.acme.com"]
    assert member.trusted
    assert member.kind is VariantKind.ALLOWED
    # Unescaped-dot variants the policy allows anyway are not attacks.
    assert all(not o.trusted for o in origins if o.kind is VariantKind.UNESCAPED_DOT)
    # Attack hosts are still generated around the wildcard's domain.
    assert found[f"https://{TOKEN}acme.com"].kind is VariantKind.SUFFIX
    assert found[f"https://{TOKEN}.acme.com_.attacker.example"].kind is VariantKind.SPECIAL_CHARS


def test_a_wildcard_yields_every_attack_family_from_a_concrete_member(
    psl: PublicSuffixList,
) -> None:
    found = by_value(generate(psl, ["https://*.partner.co.uk"]))
    member = f"{TOKEN}.partner.co.uk"
    # A regex with no end anchor for "[a-z]+\\.partner\\.co\\.uk" takes this, not the bare domain.
    assert found[f"https://{member}.attacker.example"].kind is VariantKind.PREFIX
    assert found["https://partner.co.uk.attacker.example"].kind is VariantKind.PREFIX
    assert found[f"https://{TOKEN}xpartner.co.uk"].kind is VariantKind.UNESCAPED_DOT
    assert found[f"https://{member}_.attacker.example"].kind is VariantKind.SPECIAL_CHARS
    assert found[f"http://{member}"].kind is VariantKind.HTTP_DOWNGRADE
    assert found[f"https://{TOKEN}partner.co.uk"].kind is VariantKind.SUFFIX
    assert all(
        found[v].base == "https://*.partner.co.uk"
        for v in (f"https://{member}.attacker.example", f"https://{TOKEN}xpartner.co.uk")
    )


def test_any_subdomain_includes_the_registrable_domain_in_the_apis_scheme(
    psl: PublicSuffixList,
) -> None:
    # The front end is on http; the API is https: a one-label subdomain of
    # acme.com in https must still be tried, not only x.app.acme.com and http.
    found = by_value(generate(psl, ["http://app.acme.com"]))
    assert found[f"https://{TOKEN}.acme.com"].kind is VariantKind.SUBDOMAIN
    assert found[f"http://{TOKEN}.acme.com"].kind is VariantKind.SUBDOMAIN
    assert found[f"http://{TOKEN}.app.acme.com"].kind is VariantKind.SUBDOMAIN
    assert not found[f"https://{TOKEN}.acme.com"].trusted


def test_attacker_variants_the_policy_allows_are_trusted(psl: PublicSuffixList) -> None:
    origins = generate(psl, ["https://app.acme.com", "http://app.acme.com", "https://*.github.io"])
    found = by_value(origins)
    downgrade = found["http://app.acme.com"]
    assert downgrade.trusted
    third_party = found[f"https://{TOKEN}.github.io"]
    assert third_party.trusted
    assert "legitimate" in third_party.note or "allowed" in third_party.note


def test_explicit_ports_are_kept_where_an_attacker_can_use_them(psl: PublicSuffixList) -> None:
    origins = generate(psl, ["https://app.acme.com:8443"])
    found = by_value(origins)
    assert found["https://app.acme.com:8443"].kind is VariantKind.ALLOWED
    assert found["http://app.acme.com:8443"].kind is VariantKind.HTTP_DOWNGRADE
    assert found[f"https://{TOKEN}acme.com:8443"].kind is VariantKind.SUFFIX
    # Inside the registrable domain, '{token}app.acme.com' would only prove subdomain trust.
    assert f"https://{TOKEN}app.acme.com:8443" not in found
    assert found[f"https://{TOKEN}.app.acme.com:8443"].kind is VariantKind.SUBDOMAIN
    assert found["https://app.acme.com.attacker.example"].kind is VariantKind.PREFIX
    # No default port to make explicit.
    assert values_of(origins, VariantKind.ALLOWED_PORT) == []


def test_many_allowed_origins_are_all_probed_but_only_some_expanded(
    psl: PublicSuffixList,
) -> None:
    allowed = [f"https://app{i}.acme.com" for i in range(20)]
    origins = generate(psl, allowed, variant_settings=VariantSettings(max_trusted_bases=3))
    assert values_of(origins, VariantKind.ALLOWED) == allowed
    # Three policy bases plus, always, the endpoint's registrable domain.
    assert values_of(origins, VariantKind.PREFIX) == [
        "https://app0.acme.com.attacker.example",
        "https://app1.acme.com.attacker.example",
        "https://app2.acme.com.attacker.example",
        "https://acme.com.attacker.example",
    ]
    assert len(values_of(origins, VariantKind.ALLOWED_TRAILING_SLASH)) == 3


def test_settings_change_the_attacker_and_the_lists(psl: PublicSuffixList) -> None:
    custom = VariantSettings(
        attacker_domain="evil.test",
        third_party_hosts=("*.example.net", "sandbox.example.org"),
        special_chars=("_",),
        localhost_origins=("http://localhost:5173",),
    )
    origins = generate(psl, ISSUE_POLICY, variant_settings=custom)
    assert values_of(origins, VariantKind.ARBITRARY) == [f"https://{TOKEN}.evil.test"]
    assert values_of(origins, VariantKind.THIRD_PARTY) == [
        f"https://{TOKEN}.example.net",
        "https://sandbox.example.org",
    ]
    assert values_of(origins, VariantKind.SPECIAL_CHARS) == ["https://app.acme.com_.evil.test"]
    assert values_of(origins, VariantKind.LOCALHOST) == ["http://localhost:5173"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attacker_domain": "Attacker.example"},
        {"attacker_domain": "attacker.example/x"},
        {"attacker_domain": "10.0.0.1"},
        {"attacker_domain": ""},
        {"third_party_hosts": ("*.github.io", "evil host.com")},
        {"third_party_hosts": ("https://codepen.io",)},
        {"special_chars": (" ",)},
        {"special_chars": ("\r",)},
        {"special_chars": ("ab",)},
        {"localhost_origins": ("http://localhost:3000/",)},
        {"localhost_origins": ("null",)},
        {"max_trusted_bases": -1},
    ],
)
def test_settings_that_cannot_make_header_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VariantSettings(**kwargs)  # type: ignore[arg-type]


# -- properties over random endpoints and policies ------------------------------------


def assert_origins_are_well_formed(origins: tuple[ProbeOrigin, ...], policy: Policy) -> None:
    values = [o.value for o in origins]
    assert len(values) == len(set(values))
    for origin in origins:
        value = origin.value
        # A valid header value: printable ASCII, no space, no CR/LF/NUL.
        assert value.isascii()
        assert value.isprintable()
        assert not set(value) & set(" \t\r\n\0")
        if "," in value:
            assert origin.kind is VariantKind.SPECIAL_CHARS
        if origin.browser_sendable and value != "null":
            parsed = Origin.parse(value)
            assert parsed.serialize() == value
            assert origin.trusted == policy.allows(parsed)
        if not origin.browser_sendable:
            assert not origin.trusted


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,15}[a-z0-9])?", fullmatch=True)
_TLD = st.sampled_from(["com", "co.uk", "github.io", "de", "io", "example", "xn--p1ai"])
_DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(_LABEL, min_size=1, max_size=3), _TLD
)
_HOST = st.one_of(
    _DOMAIN,
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.just("[::1]"),
    st.just("localhost"),
)
_PORT = st.one_of(st.none(), st.sampled_from([80, 443, 3000, 8443]))
_SCHEME = st.sampled_from(["http", "https"])


def _origin_text(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def endpoint_origin_serialized(text: str) -> str:
    return Origin.parse(text).serialize()


_ORIGIN = st.builds(_origin_text, _SCHEME, _HOST, _PORT)
_PATTERN = st.one_of(
    _ORIGIN,
    st.builds(lambda s, d, p: _origin_text(s, "*." + d, p), _SCHEME, _DOMAIN, _PORT),
    st.just("null"),
)
_TOKEN = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(_ORIGIN, st.lists(_PATTERN, max_size=5), _TOKEN)
def test_every_value_is_a_valid_origin_header(
    endpoint_origin: str, allowed: list[str], token: str
) -> None:
    policy = Policy.build(allowed_origins=allowed)
    origins = probe_origins(
        endpoint_origin + "/api", policy, suffixes=default_public_suffixes(), token=token
    )
    assert_origins_are_well_formed(origins, policy)
    values = {o.value for o in origins}
    assert {
        f"https://{token}.attacker.example",
        "null",
        endpoint_origin_serialized(endpoint_origin),
    } <= values
    # Every origin the policy names is probed as a legitimate one.
    allowed_values = {o.value for o in origins if o.kind is VariantKind.ALLOWED}
    assert {p.origin.serialize() for p in policy.allowed_origins if p.origin} <= allowed_values
    assert origins == probe_origins(
        endpoint_origin + "/api", policy, suffixes=default_public_suffixes(), token=token
    )
