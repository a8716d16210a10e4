"""Import files to inventory rows, and inventory back to files.

``parse_import`` is the one entry point (CLI and API): bytes in, rows and
per-row errors out; problems with the file as a whole raise ``InputError``.
Formats: CSV, JSON and YAML inventories (``tabular``) and OpenAPI 3.x
documents (``openapi``). ``export`` writes CSV, JSON and YAML that import
back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from scanner.core.import_rows import ImportRow, RowError
from scanner.errors import InputError
from scanner.importers import openapi, tabular
from scanner.importers.documents import check_size, decode, load_json, load_yaml

__all__ = ["ImportFormat", "ParsedImport", "detect_format", "parse_import"]


class ImportFormat(StrEnum):
    """What an import file is."""

    CSV = "csv"
    JSON = "json"
    YAML = "yaml"
    OPENAPI = "openapi"


@dataclass(frozen=True, slots=True)
class ParsedImport:
    """The rows of a file that parsed, and the errors of those that did not."""

    rows: tuple[ImportRow, ...]
    errors: tuple[RowError, ...]


_SUFFIXES = {".csv": ImportFormat.CSV, ".json": ImportFormat.JSON, ".yaml": ImportFormat.YAML}
_SUFFIXES[".yml"] = ImportFormat.YAML
_MEDIA_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/json": ImportFormat.JSON,
    "application/yaml": ImportFormat.YAML,
    "application/x-yaml": ImportFormat.YAML,
    "text/yaml": ImportFormat.YAML,
    "application/vnd.oai.openapi": ImportFormat.OPENAPI,
    "application/vnd.oai.openapi+json": ImportFormat.OPENAPI,
}


def detect_format(*, filename: str | None = None, content_type: str | None = None) -> ImportFormat:
    """The format a file name's suffix or a media type names; ``InputError`` if neither does."""
    if content_type:
        media = content_type.split(";")[0].strip().lower()
        if media in _MEDIA_TYPES:
            return _MEDIA_TYPES[media]
    if filename:
        suffix = PurePath(filename).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    raise InputError(
        "cannot tell the file's format: name it .csv, .json, .yaml or say which (csv, json, "
        "yaml, openapi)"
    )


def parse_import(
    data: bytes,
    fmt: ImportFormat | str,
    *,
    max_bytes: int,
    max_rows: int,
    base_url: str | None = None,
) -> ParsedImport:
    """Parse an import file. ``base_url`` resolves relative OpenAPI server URLs.

    A JSON or YAML file that turns out to be an OpenAPI document (it has an
    ``openapi`` key) is read as one. Every format has the same two caps: at most
    ``max_bytes`` bytes (checked before anything is decoded) and at most ``max_rows``
    rows (records of a CSV file, items of a JSON or YAML list, endpoints an OpenAPI
    document yields: servers x operations), counted while reading, so an oversized file
    is refused before its rows are built. Over either: ``InputError`` saying which cap.
    """
    try:
        kind = ImportFormat(fmt)
    except ValueError:
        raise InputError(f"unknown import format {fmt!r}: use csv, json, yaml or openapi") from None
    check_size(data, max_bytes)
    text = decode(data)
    if kind is ImportFormat.CSV:
        rows, errors = tabular.parse_csv(text, max_rows=max_rows)
    elif kind is ImportFormat.OPENAPI:
        rows, errors = openapi.parse_openapi(
            openapi.load_openapi(text), base_url=base_url, max_rows=max_rows
        )
    else:
        document = load_json(text) if kind is ImportFormat.JSON else load_yaml(text)
        if isinstance(document, dict) and "openapi" in document:
            rows, errors = openapi.parse_openapi(document, base_url=base_url, max_rows=max_rows)
        else:
            rows, errors = tabular.parse_objects(document, kind.value.upper(), max_rows=max_rows)
    return ParsedImport(rows=tuple(rows), errors=tuple(errors))
