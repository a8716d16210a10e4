"""Policy layers, table by table: what a layer may say, and how layers combine."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.core.origin import Origin
from scanner.core.policy import OriginPattern
from scanner.core.policy_layers import (
    POLICY_FIELDS,
    PolicyFields,
    PolicyScope,
    check_scope,
    covers,
    intersect_patterns,
    merge_tag_values,
    resolve,
    scope_key,
)
from scanner.errors import ValidationError


def layer(**fields: Any) -> PolicyFields:
    return PolicyFields.validate(fields)


# -- one layer -------------------------------------------------------------------------


def test_validation_names_every_bad_field() -> None:
    with pytest.raises(ValidationError) as exc:
        PolicyFields.validate(
            {
                "allowed_origins": [
                    "*",
                    "https://ok.example",
                    "https://.*\\.acme\\.com",
                    "acme.com",
                ],
                "allowed_methods": ["GET", "BAD METHOD"],
                "max_age": -1,
                "allow_credentials": "yes",
                "allowed_origin": ["typo.example"],
            }
        )
    errors = {e.field: e.message for e in exc.value.errors}
    assert set(errors) == {
        "allowed_origins",
        "allowed_methods",
        "max_age",
        "allow_credentials",
        "allowed_origin",
    }
    assert "public=true" in errors["allowed_origins"]  # '*' says how to say "public"
    assert "acme.com" in errors["allowed_origins"]
    assert "'BAD METHOD' is not a valid method" in errors["allowed_methods"]
    assert "unknown policy field" in errors["allowed_origin"]


def test_public_with_credentials_is_refused_in_one_layer() -> None:
    with pytest.raises(ValidationError) as exc:
        PolicyFields.validate({"public": True, "allow_credentials": True})
    assert [e.field for e in exc.value.errors] == ["public"]


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("allowed_methods", ["get", "PUT", "put"], ("GET", "PUT")),
        ("allowed_methods", ["patch", "PATCH"], ("patch", "PATCH")),  # as fetch() sends them
        ("allowed_headers", ["X-Token", "x-token"], ("x-token",)),
        ("exposed_headers", ["ETag"], ("etag",)),
        ("allowed_origins", ["https://App.Acme.com:443/"], ("https://app.acme.com",)),
        ("allowed_origins", ["https://*.Acme.com"], ("https://*.acme.com",)),
        ("allowed_origins", ["https://bücher.example"], ("https://xn--bcher-kva.example",)),
        ("allowed_origins", [], ()),  # a value: no cross-origin reader at all
        ("max_age", 0, 0),
        ("public", False, False),
    ],
)
def test_values_are_canonical(field: str, given: Any, stored: Any) -> None:
    fields = PolicyFields.validate(
        {field: given}, encode_host=lambda host: {"bücher.example": "xn--bcher-kva.example"}[host]
    )
    assert getattr(fields, field) == stored


def test_an_internationalised_origin_needs_the_mapping() -> None:
    with pytest.raises(ValidationError, match="UTS #46"):
        PolicyFields.validate({"allowed_origins": ["https://bücher.example"]})


def test_merged_is_a_patch_where_none_inherits() -> None:
    current = layer(allowed_origins=["https://a.example"], max_age=60)
    assert PolicyFields.validate(current.merged({"max_age": None, "public": True})) == layer(
        allowed_origins=["https://a.example"], public=True
    )
    assert PolicyFields().is_empty
    assert not current.is_empty


@pytest.mark.parametrize(
    ("scope", "tag", "endpoint_id", "bad"),
    [
        ("tag", None, None, {"tag"}),
        ("default", "x", 1, {"tag", "endpoint_id"}),
        ("global", None, None, {"scope"}),
        ("tag", "no spaces", None, {"tag"}),
        ("endpoint", None, None, {"endpoint_id"}),
        ("endpoint", "x", True, {"tag", "endpoint_id"}),
    ],
)
def test_scope_arguments_are_checked(
    scope: str, tag: str | None, endpoint_id: Any, bad: set[str]
) -> None:
    with pytest.raises(ValidationError) as exc:
        check_scope(scope, tag, endpoint_id)
    assert {e.field for e in exc.value.errors} == bad


def test_scopes_and_their_keys() -> None:
    assert check_scope("tag", "PCI", None) == (PolicyScope.TAG, "pci", None)
    assert scope_key(PolicyScope.DEFAULT) == "default"
    assert scope_key(PolicyScope.TAG, tag="pci") == "tag:pci"
    assert scope_key(PolicyScope.ENDPOINT, endpoint_id=7) == "endpoint:7"


# -- resolution ------------------------------------------------------------------------


def test_nothing_set_is_the_builtin_policy() -> None:
    eff = resolve(None, [], None)
    assert not eff.policy.declared
    assert eff.sources == dict.fromkeys(POLICY_FIELDS, "builtin")


def test_resolution_order_and_sources() -> None:
    eff = resolve(
        layer(allowed_origins=["https://app.acme.com"], max_age=600),
        [("payments", layer(allowed_origins=["https://pay.acme.com"], allow_credentials=True))],
        layer(max_age=60),
    )
    assert [str(p) for p in eff.policy.allowed_origins] == ["https://pay.acme.com"]
    assert (eff.policy.allow_credentials, eff.policy.max_age) == (True, 60)
    assert eff.sources == {
        "allowed_origins": "tag:payments",
        "allow_credentials": "tag:payments",
        "allowed_methods": "builtin",
        "allowed_headers": "builtin",
        "exposed_headers": "builtin",
        "max_age": "endpoint",
        "public": "builtin",
    }


def test_disagreeing_tags_merge_to_the_strictest_whatever_their_order() -> None:
    web = layer(
        allowed_origins=["https://*.acme.com", "https://partner.example"],
        allow_credentials=True,
        allowed_methods=["GET", "POST"],
        max_age=600,
    )
    mobile = layer(
        allowed_origins=["https://m.acme.com", "https://*.eu.acme.com", "https://other.example"],
        allow_credentials=False,
        allowed_methods=["GET", "DELETE"],
        max_age=60,
    )
    for tags in ([("web", web), ("mobile", mobile)], [("mobile", mobile), ("web", web)]):
        eff = resolve(None, tags, None)
        assert [str(p) for p in eff.policy.allowed_origins] == [
            "https://m.acme.com",
            "https://*.eu.acme.com",
        ]
        assert eff.policy.allow_credentials is False
        assert eff.policy.allowed_methods == ("GET",)
        assert eff.policy.max_age == 60
        assert eff.sources["allowed_origins"] == "tag:mobile,tag:web"
        assert eff.policy.allows(Origin.parse("https://x.eu.acme.com"))
        assert not eff.policy.allows(Origin.parse("https://www.acme.com"))
        assert not eff.policy.allows(Origin.parse("https://partner.example"))


@pytest.mark.parametrize(
    ("default", "tags", "endpoint", "public", "credentials", "source"),
    [
        # The more specific layer wins; the other becomes false with the winner's source.
        ({"allow_credentials": True}, [("open", {"public": True})], None, True, False, "tag:open"),
        ({"public": True}, [], {"allow_credentials": True}, False, True, "endpoint"),
        # Both from the tag merge: neither holds.
        (
            {},
            [("open", {"public": True}), ("login", {"allow_credentials": True})],
            None,
            False,
            False,
            "tag:login",
        ),
    ],
)
def test_public_and_credentials_from_different_layers(
    default: dict[str, Any],
    tags: list[tuple[str, dict[str, Any]]],
    endpoint: dict[str, Any] | None,
    public: bool,
    credentials: bool,
    source: str,
) -> None:
    eff = resolve(
        layer(**default),
        [(t, layer(**f)) for t, f in tags],
        None if endpoint is None else layer(**endpoint),
    )
    assert (eff.policy.public, eff.policy.allow_credentials) == (public, credentials)
    assert eff.sources["allow_credentials"] == source


@pytest.mark.parametrize(
    ("field", "values", "merged"),
    [
        ("allow_credentials", [True, True], True),
        ("allow_credentials", [True, False], False),
        ("public", [False, True], False),
        ("max_age", [600, 60, 3600], 60),
        ("allowed_methods", [("GET", "POST"), ("POST", "GET", "PUT")], ("GET", "POST")),
        ("allowed_headers", [("a", "b"), ("c",)], ()),
        ("exposed_headers", [("etag",)], ("etag",)),
    ],
)
def test_merge_tag_values(field: str, values: list[Any], merged: Any) -> None:
    assert merge_tag_values(field, values) == merged


@pytest.mark.parametrize(
    ("lists", "kept"),
    [
        ([["https://a.example"], ["https://a.example"]], ("https://a.example",)),
        ([["https://a.example"], ["https://b.example"]], ()),
        ([["https://*.acme.com"], ["https://app.acme.com"]], ("https://app.acme.com",)),
        ([["https://*.acme.com"], ["https://*.eu.acme.com"]], ("https://*.eu.acme.com",)),
        ([["https://*.acme.com"], ["http://app.acme.com"]], ()),  # the scheme must agree
        ([["https://*.acme.com"], ["https://app.acme.com:8443"]], ()),  # and the port
        ([["https://*.acme.com"], ["https://acme.com"]], ()),  # *. needs a subdomain
        ([["null"], ["null"]], ("null",)),
        ([["null"], ["https://*.acme.com"]], ()),
    ],
)
def test_intersect_patterns(lists: list[list[str]], kept: tuple[str, ...]) -> None:
    assert intersect_patterns(lists) == kept
    assert set(intersect_patterns(list(reversed(lists)))) == set(kept)


@pytest.mark.parametrize(
    ("outer", "inner", "result"),
    [
        ("https://*.acme.com", "https://x.acme.com", True),
        ("https://*.acme.com", "https://*.x.acme.com", True),
        ("https://*.x.acme.com", "https://*.acme.com", False),
        ("https://x.acme.com", "https://x.acme.com", True),
        ("https://x.acme.com", "https://y.acme.com", False),
        ("https://*.acme.com", "https://evilacme.com", False),
    ],
)
def test_covers(outer: str, inner: str, result: bool) -> None:
    assert covers(OriginPattern.parse(outer), OriginPattern.parse(inner)) is result
