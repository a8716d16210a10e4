"""The inventory as CSV, JSON or YAML, in the shape ``scanner.importers`` reads back.

Each endpoint is one row with its own policy override in the policy columns
(empty when it inherits). Re-importing an export changes nothing.

CSV cells that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or CR) are written with a leading ``'``; the
importer removes it again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import yaml

from scanner.core.endpoints import ENDPOINT_FIELDS, EndpointInput
from scanner.core.policy_layers import POLICY_FIELDS, PolicyFields
from scanner.errors import InputError

COLUMNS: tuple[str, ...] = ENDPOINT_FIELDS + POLICY_FIELDS
EXPORT_FORMATS = ("csv", "json", "yaml")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def endpoint_document(endpoint: EndpointInput, override: PolicyFields | None) -> dict[str, Any]:
    """One endpoint as an import object: its fields, then the override's set fields."""
    doc: dict[str, Any] = endpoint.as_mapping()
    # Secrets never leave in an export; "[redacted]" imports back as "keep the stored value".
    doc["request_headers"] = endpoint.public_request_headers
    if override is not None:
        for name, value in override.as_mapping().items():
            if value is not None:
                doc[name] = value
    return doc


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # request headers: a JSON object in one cell
        return json.dumps(value, ensure_ascii=False) if value else ""
    # A joined list is one cell too: "-X;GET" (allowed_methods) runs as a formula as well.
    text = ";".join(value) if isinstance(value, list | tuple) else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def export_endpoints(
    endpoints: Sequence[tuple[EndpointInput, PolicyFields | None]], fmt: str
) -> str:
    """Endpoints, each with its own policy layer (None: none), as ``csv``, ``json`` or ``yaml``."""
    docs = [endpoint_document(e, override) for e, override in endpoints]
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for doc in docs:
            writer.writerow([_cell(doc.get(c)) for c in COLUMNS])
        return out.getvalue()
    if fmt == "json":
        return json.dumps({"endpoints": docs}, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return str(
            yaml.safe_dump(
                {"endpoints": docs}, sort_keys=False, allow_unicode=True, default_flow_style=False
            )
        )
    raise InputError(f"unknown export format {fmt!r}: use csv, json or yaml")
