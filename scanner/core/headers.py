"""Raw HTTP header lines as a browser sees them: order and duplicates kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

# Header values travel as bytes. We hold them as str decoded with latin-1, which
# maps every byte to one code point, so nothing is lost and byte-for-byte
# comparisons (the CORS check's) stay exact.
HeaderLine = tuple[str, str]

T = TypeVar("T")
REDACTED = "[redacted]"
# A secret shorter than this is not searched for inside other header values:
# replacing every "1" or "on" a response carries would destroy the evidence.
MIN_ECHOED_SECRET = 4


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered list of (name, value) lines; names compared case-insensitively."""

    lines: tuple[HeaderLine, ...] = ()
    # Lowercased name -> values, built on first lookup: the checks ask one
    # response for a dozen names, and a scan judges every response it gets.
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    # Values derived from these lines by pure functions (``memo``), kept: a
    # page request's header set is judged against every response it gets.
    _memo: dict[str, object] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, lines: Iterable[HeaderLine] | dict[str, str] = ()) -> Headers:
        items = lines.items() if isinstance(lines, dict) else lines
        return cls(tuple((str(n), str(v)) for n, v in items))

    @classmethod
    def with_index(cls, lines: tuple[HeaderLine, ...], index: dict[str, list[str]]) -> Headers:
        """``Headers(lines)`` whose name index the caller already built (lowercased name ->
        values in order): a parser that lowercases every name anyway saves the second pass."""
        headers = cls(lines)
        object.__setattr__(headers, "_index", index)
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for n, v in self.lines:
                key = n.lower()
                values = index.get(key)
                if values is None:
                    index[key] = [v]
                else:
                    values.append(v)
            object.__setattr__(self, "_index", index)
        return index

    def memo(self, key: str, compute: Callable[[Headers], T]) -> T:
        """``compute(self)``, computed once per ``key`` (``compute`` must be pure)."""
        memo = self._memo
        if memo is None:
            memo = {}
            object.__setattr__(self, "_memo", memo)
        if key in memo:
            return cast(T, memo[key])  # stored by this method, from the same compute
        value = compute(self)
        memo[key] = value
        return value

    def __iter__(self) -> Iterator[HeaderLine]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in order, untrimmed."""
        index = self._index if self._index is not None else self._lookup()
        return tuple(index.get(name.lower(), ()))

    def combined(self, name: str) -> str | None:
        """The Fetch standard's "get" of a header: all values joined by ", ", or None.

        Fetch, "get a header": values of every line with this name, combined with
        0x2C 0x20, then stripped of leading and trailing HTTP whitespace.
        """
        index = self._index if self._index is not None else self._lookup()
        values = index.get(name.lower())
        if values is None:
            return None
        if len(values) == 1:
            return values[0].strip(" \t")
        return ", ".join(v.strip(" \t") for v in values)

    def names(self) -> tuple[str, ...]:
        """Distinct header names, lowercased, in first-seen order."""
        return tuple(self._lookup())

    def redacted(self, names: frozenset[str], secrets: Iterable[str] = ()) -> Headers:
        """The same lines for reports: values of ``names`` (lowercase) replaced, and
        every occurrence of a ``secrets`` value (4 characters or more) in any other
        value replaced too, so a target that echoes a secret back cannot leak it."""
        echoed = sorted({s for s in secrets if len(s) >= MIN_ECHOED_SECRET}, key=len, reverse=True)
        if not names and not echoed:
            return self
        out: list[HeaderLine] = []
        changed = False
        for n, v in self.lines:
            if names and n.lower() in names:
                value = REDACTED
            else:
                value = v
                for secret in echoed:
                    if secret in value:
                        value = value.replace(secret, REDACTED)
            changed = changed or value is not v
            out.append((n, value))
        return Headers(tuple(out)) if changed else self

    def as_list(self) -> list[list[str]]:
        """JSON-friendly form: a list of [name, value] pairs."""
        return [[n, v] for n, v in self.lines]
