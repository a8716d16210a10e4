"""Raw HTTP header lines as a browser sees them: order and duplicates kept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Header values travel as bytes. We hold them as str decoded with latin-1, which
# maps every byte to one code point, so nothing is lost and byte-for-byte
# comparisons (the CORS check's) stay exact.
HeaderLine = tuple[str, str]

REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered list of (name, value) lines; names compared case-insensitively."""

    lines: tuple[HeaderLine, ...] = ()

    @classmethod
    def of(cls, lines: Iterable[HeaderLine] | dict[str, str] = ()) -> Headers:
        items = lines.items() if isinstance(lines, dict) else lines
        return cls(tuple((str(n), str(v)) for n, v in items))

    def __iter__(self) -> Iterator[HeaderLine]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self.lines)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in order, untrimmed."""
        lowered = name.lower()
        return tuple(v for n, v in self.lines if n.lower() == lowered)

    def combined(self, name: str) -> str | None:
        """The Fetch standard's "get" of a header: all values joined by ", ", or None.

        Fetch, "get a header": values of every line with this name, combined with
        0x2C 0x20, then stripped of leading and trailing HTTP whitespace.
        """
        values = self.get_all(name)
        if not values:
            return None
        return ", ".join(v.strip(" \t") for v in values)

    def names(self) -> tuple[str, ...]:
        """Distinct header names, lowercased, in first-seen order."""
        seen: dict[str, None] = {}
        for n, _ in self.lines:
            seen.setdefault(n.lower(), None)
        return tuple(seen)

    def redacted(self, names: frozenset[str]) -> Headers:
        """The same lines with the values of ``names`` (lowercase) replaced: for reports."""
        if not names:
            return self
        return Headers(tuple((n, REDACTED if n.lower() in names else v) for n, v in self.lines))

    def as_list(self) -> list[list[str]]:
        """JSON-friendly form: a list of [name, value] pairs."""
        return [[n, v] for n, v in self.lines]
