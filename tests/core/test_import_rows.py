"""An import's rules: rows checked again, duplicates refused, only given fields change."""

from __future__ import annotations

from typing import Any

from scanner.core.endpoints import EndpointInput
from scanner.core.import_rows import ImportRow, RowError, check_rows, row_changes
from scanner.core.policy_layers import PolicyFields


def row(n: int, url: str, policy: dict[str, Any] | None = None, **fields: Any) -> ImportRow:
    return ImportRow(
        row=n,
        endpoint=EndpointInput.validate({"url": url, **fields}),
        given=frozenset({"method", "url", *fields}),
        policy=None if policy is None else PolicyFields.validate(policy),
    )


def test_rows_are_checked_again_and_duplicates_refused() -> None:
    bad_policy = ImportRow(
        row=4,
        endpoint=EndpointInput(method="GET", url="https://c.example/"),
        policy=PolicyFields(public=True, allow_credentials=True),
    )
    hand_made = ImportRow(row=5, endpoint=EndpointInput(method="GET", url="javascript:alert(1)"))
    not_canonical = ImportRow(row=6, endpoint=EndpointInput(method="get", url="HTTPS://D.example"))
    accepted, errors = check_rows(
        [
            row(2, "https://a.example/"),
            row(3, "https://A.example:443/"),  # the same endpoint again
            bad_policy,
            hand_made,
            not_canonical,
        ]
    )
    assert [r.row for r in accepted] == [2, 6]
    assert accepted[1].endpoint.key == ("GET", "https://d.example/")
    assert [(e.row, e.field) for e in errors] == [(3, "url"), (4, "public"), (5, "url")]
    assert "already on row 2" in errors[0].message
    assert str(errors[0]) == "row 3, url: GET https://a.example/ is already on row 2"
    assert str(RowError(7, None, "broken")) == "row 7: broken"


def test_the_same_url_with_another_method_is_another_endpoint() -> None:
    accepted, errors = check_rows(
        [row(2, "https://a.example/"), row(3, "https://a.example/", method="patch")]
    )
    assert errors == []
    assert [r.endpoint.key for r in accepted] == [
        ("GET", "https://a.example/"),
        ("patch", "https://a.example/"),
    ]


def test_only_the_fields_a_file_gives_change_an_endpoint() -> None:
    current = EndpointInput.validate(
        {"url": "https://a.example/", "owner": "team-a", "notes": "keep", "tags": ["t"]}
    )
    fields, policy_changed = row_changes(row(2, "https://a.example/", name="New"), current, None)
    assert (fields, policy_changed) == (["name"], False)
    same = row(2, "https://a.example/", owner="team-a", tags=["t"])
    assert row_changes(same, current, None) == ([], False)


def test_policy_columns_change_the_endpoints_own_layer() -> None:
    current = EndpointInput.validate({"url": "https://a.example/"})
    wanted = {"allowed_origins": ["https://app.example"]}
    assert row_changes(row(2, "https://a.example/", wanted), current, None) == (["policy"], True)
    existing = PolicyFields.validate(wanted)
    assert row_changes(row(2, "https://a.example/", wanted), current, existing) == ([], False)
    # A row with no policy columns keeps the layer; empty columns on a new layer set nothing.
    assert row_changes(row(2, "https://a.example/"), current, existing) == ([], False)
    assert row_changes(row(2, "https://a.example/", {}), current, None) == ([], False)
