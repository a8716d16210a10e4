"""The inventory's endpoint rules, table by table: URL, method, tags, text fields."""

from __future__ import annotations

import pytest

from scanner.core.browser import normalize_method
from scanner.core.endpoints import (
    EndpointInput,
    canonical_tag,
    canonical_tags,
    canonical_url,
    endpoint_method,
    one_line,
)
from scanner.errors import InputError, InvalidURL, ValidationError

# A stand-in for scanner.hostnames.uts46_host_encoder: the core is given the mapping.
UTS46 = {"bücher.example": "xn--bcher-kva.example", "straße.de": "xn--strae-oqa.de"}


def encode(host: str) -> str:
    return UTS46[host.lower()]


# -- the method: as fetch() sends it ------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("GET", "GET"),
        ("get", "GET"),
        ("  Post ", "POST"),
        ("head", "HEAD"),
        ("put", "PUT"),
        ("delete", "DELETE"),
        ("oPtIoNs", "OPTIONS"),
        ("PATCH", "PATCH"),
        ("patch", "patch"),  # not one of the six: kept exactly as written
        ("Patch", "Patch"),
        ("propfind", "propfind"),
        ("M-SEARCH", "M-SEARCH"),
    ],
)
def test_the_method_is_what_fetch_sends(given: str, stored: str) -> None:
    assert endpoint_method(given) == stored
    assert normalize_method(given.strip()) == stored  # the one rule, from core.browser


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "expected an HTTP method"),
        ("   ", "expected an HTTP method"),
        ("GE T", "is not an HTTP method"),
        ("GE\rT", "is not an HTTP method"),
        ("GÉT", "is not an HTTP method"),
        ("(GET)", "is not an HTTP method"),
        ("A" * 17, "longer than 16"),
        ("TRACE", "forbidden method"),
        ("trace", "forbidden method"),  # Fetch: a byte-case-insensitive match
        ("Connect", "forbidden method"),
        ("track", "forbidden method"),
    ],
)
def test_bad_methods_are_refused(given: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        endpoint_method(given)


def test_normalize_method_refuses_what_is_not_a_token() -> None:
    for bad in ("", "GE T", "ü", "a,b", "get\n"):
        with pytest.raises(InputError, match="is not an HTTP method"):
            normalize_method(bad)


# -- the URL: one canonical form ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.acme.com/", "http:// or https://"),
        ("/relative/path", "http:// or https://"),
        ("https://", "no host"),
        ("https://:443/x", "no host"),
        ("https://user:secret@api.acme.com/", "user name and password"),
        ("https://user@api.acme.com/", "user name and password"),
        ("https://api.acme.com/a b", "no spaces or control characters"),
        ("https://api.acme.com/\r\nX-Injected: 1", "no spaces or control characters"),
        ("https://api.acme.com/\tx", "no spaces or control characters"),
        ("https://api.acme.com/#frag", "fragment"),
        ("https://api..acme.com/", "empty label"),
        ("https://api.acme.com:99999/", "out of range"),
        ("https://" + "a" * 2100 + ".com/", "longer than 2048"),
        ("https://bücher.example/", "UTS #46"),  # no mapping given: refused, not guessed
    ],
)
def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason):
        canonical_url(url)


def test_a_password_is_never_echoed() -> None:
    with pytest.raises(InvalidURL) as exc:
        canonical_url("https://user:hunter2@api.acme.com/a b")
    assert "hunter2" not in exc.value.message


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/a?b=c", "https://example.com:8443/a?b=c"),
        ("https://bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
        ("https://STRASSE.de/", "https://strasse.de/"),
        ("https://straße.de/", "https://xn--strae-oqa.de/"),  # UTS 46: not strasse.de
        ("https://[::1]:8080/x", "https://[::1]:8080/x"),
        ("https://[0:0::1]/", "https://[::1]/"),
        ("http://127.0.0.1:8000/health", "http://127.0.0.1:8000/health"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("https://a.example/p?q=ü", "https://a.example/p?q=%C3%BC"),
    ],
)
def test_urls_are_canonical(url: str, canonical: str) -> None:
    assert canonical_url(url, encode_host=encode) == canonical


# -- tags and text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [("pci", "pci"), ("PCI", "pci"), (" Team:Pay/v1@eu+x-y_z. ", "team:pay/v1@eu+x-y_z.")],
)
def test_tags_are_lower_case(tag: str, canonical: str) -> None:
    assert canonical_tag(tag) == canonical


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("", "cannot be empty"),
        ("not ok", "use letters, digits"),
        ("-leading", "use letters, digits"),
        ("x" * 101, "longer than 100"),
        (7, "a tag is a string"),
    ],
)
def test_bad_tags_are_refused(tag: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        canonical_tag(tag)


def test_tag_lists_are_sorted_and_deduplicated_and_name_every_bad_one() -> None:
    assert canonical_tags(["b", "A", "a"]) == ("a", "b")
    assert canonical_tags(None) == ()
    with pytest.raises(InputError) as exc:
        canonical_tags(["ok", "not ok", ""])
    assert "not ok" in exc.value.message
    assert "empty" in exc.value.message
    with pytest.raises(InputError, match="a list of tags"):
        canonical_tags("a,b")
    with pytest.raises(InputError, match="at most 50"):
        canonical_tags([f"t{i}" for i in range(51)])


@pytest.mark.parametrize(
    ("text", "message"),
    [("two\nlines", "is one line"), ("tab\there", "is one line"), ("\x1b[2J", "control")],
)
def test_one_line_text(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        one_line(text, 200, "name")


# -- the whole endpoint -------------------------------------------------------------------


def test_validation_lists_every_bad_field() -> None:
    with pytest.raises(ValidationError) as exc:
        EndpointInput.validate(
            {
                "method": "GE T",
                "url": "https://user:pw@api.acme.com/",
                "name": "two\nlines",
                "tags": ["ok", "not ok", ""],
                "enabled": "yes",
                "notes": "\x1b[2J\x1b[31mall clear",
                "owner": "team\x9b31m",
                "colour": "blue",
            }
        )
    fields = {e.field for e in exc.value.errors}
    assert fields == {"method", "url", "name", "tags", "enabled", "notes", "owner", "colour"}
    assert exc.value.code == "validation_failed"


def test_url_is_required_and_method_defaults_to_get() -> None:
    with pytest.raises(ValidationError) as exc:
        EndpointInput.validate({})
    assert [e.field for e in exc.value.errors] == ["url"]
    assert EndpointInput.validate({"url": "http://a.example"}).method == "GET"


def test_the_key_and_what_changed() -> None:
    current = EndpointInput.validate({"url": "https://a.example/", "method": "patch", "name": "A"})
    assert current.key == ("patch", "https://a.example/")
    wanted = EndpointInput.validate({"url": "https://a.example/", "name": "B", "owner": "x"})
    assert current.changed(wanted, frozenset({"method", "url", "name"})) == ["name"]
    assert current.changed(wanted, frozenset({"name", "owner"})) == ["name", "owner"]
    assert current.changed(current, frozenset({"name", "owner"})) == []
