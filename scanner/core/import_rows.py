"""Rows of an inventory import: what a file says, what is wrong with it, what it changes.

An import upserts endpoints keyed by (method, url). Whatever the file format
(``scanner.importers`` reads CSV, JSON, YAML and OpenAPI into
:class:`ImportRow` values), the rules are the same:

- a bad row is reported (row and field) and never stops the others;
- a (method, url) seen earlier in the same file is an error on the later row;
- only the fields a file gives change an existing endpoint (a file without
  an ``owner`` column keeps the owners set elsewhere), so importing the same
  file twice reports every row unchanged the second time;
- a row's policy columns are the endpoint's own policy layer; a row that
  leaves them all empty keeps the layer it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from scanner.core.endpoints import ENDPOINT_FIELDS, EndpointInput
from scanner.core.origin import HostEncoder, ascii_host_encoder
from scanner.core.policy_layers import PolicyFields
from scanner.errors import ValidationError


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One endpoint read from an import file, with its optional policy override.

    ``row`` is where it came from (CSV: the line number, header = 1; JSON and
    YAML: the position in the list, from 1; OpenAPI: the operation's
    position). ``given`` names the endpoint fields the source set: only those
    change an existing endpoint. ``policy`` None leaves the override as it is.
    """

    row: int
    endpoint: EndpointInput
    given: frozenset[str] = frozenset(ENDPOINT_FIELDS)
    policy: PolicyFields | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was not imported: where (row, field when known) and why."""

    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class RowChange:
    """What an import changes (or would change) on an existing endpoint."""

    method: str
    url: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of an import, every row accounted for.

    ``created``, ``changed`` and ``unchanged`` list (method, url) keys;
    ``changes`` says which fields each changed endpoint got; ``errors`` lists
    the rows left out, in row order. With ``dry_run`` nothing was written.
    """

    created: tuple[tuple[str, str], ...] = ()
    changed: tuple[tuple[str, str], ...] = ()
    unchanged: tuple[tuple[str, str], ...] = ()
    errors: tuple[RowError, ...] = ()
    changes: tuple[RowChange, ...] = ()
    dry_run: bool = False
    created_ids: tuple[int, ...] = field(default=())


def check_rows(
    rows: Sequence[ImportRow], *, encode_host: HostEncoder = ascii_host_encoder
) -> tuple[list[ImportRow], list[RowError]]:
    """The rows to apply, canonical, and the errors of the others (in the order given).

    Every row is validated again (a caller may build rows by hand), and a
    (method, url) already on an earlier row is an error.
    """
    errors: list[RowError] = []
    accepted: list[ImportRow] = []
    first_row: dict[tuple[str, str], int] = {}
    for item in rows:
        try:
            clean = EndpointInput.validate(item.endpoint.as_mapping(), encode_host=encode_host)
            policy = (
                PolicyFields.validate(item.policy.as_mapping(), encode_host=encode_host)
                if item.policy is not None
                else None
            )
        except ValidationError as exc:
            errors.extend(RowError(item.row, e.field, e.message) for e in exc.errors)
            continue
        if clean.key in first_row:
            method, url = clean.key
            errors.append(
                RowError(
                    item.row, "url", f"{method} {url} is already on row {first_row[clean.key]}"
                )
            )
            continue
        first_row[clean.key] = item.row
        accepted.append(ImportRow(item.row, clean, item.given, policy))
    return accepted, errors


def row_changes(
    row: ImportRow, current: EndpointInput, override: PolicyFields | None
) -> tuple[list[str], bool]:
    """What applying ``row`` to an endpoint now at ``current`` changes: its fields, and
    whether its policy layer changes (``"policy"`` is then the last of the fields)."""
    fields = current.changed(row.endpoint, row.given)
    policy_changed = row.policy is not None and (
        not row.policy.is_empty if override is None else override != row.policy
    )
    if policy_changed:
        fields.append("policy")
    return fields, policy_changed


__all__ = ["ImportReport", "ImportRow", "RowChange", "RowError", "check_rows", "row_changes"]
