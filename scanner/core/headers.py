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


# -- bounded storage of a response's headers --------------------------------------

# Lines whose value the checks, the diff and a reader of the evidence need in
# full: every CORS response header, Vary (it keys caches of CORS answers) and
# Location (a redirect is followed and judged by it). Everything else is
# context for a human, kept by name with a cut value.
_KEPT_IN_FULL = frozenset(
    {"access-control-expose-headers", "access-control-max-age", "vary", "location"}
)
_CORS_RESPONSE = frozenset({"access-control-expose-headers", "access-control-max-age", "vary"})
# What a cut value ends with, so a reader never takes it for what was sent.
CUT_MARK = "…[cut]"
# Names are kept, but a hostile one may be a whole header line long.
MAX_NAME_CHARS = 128
DEFAULT_KEPT_HEADER_BYTES = 16384


def is_cors_header(name: str) -> bool:
    """A response header the CORS algorithms or caches of CORS answers read (Vary included)."""
    lowered = name.lower()
    return lowered.startswith("access-control-allow-") or lowered in _CORS_RESPONSE


def kept_in_full(name: str) -> bool:
    """A header line :func:`bounded_headers` never cuts: CORS headers, Vary and Location."""
    lowered = name.lower()
    return lowered.startswith("access-control-allow-") or lowered in _KEPT_IN_FULL


def _cut(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    return text[: max(0, room - len(CUT_MARK))] + CUT_MARK


def _shares(lengths: list[int], budget: int) -> list[int]:
    # Max-min fair: short values are kept whole and what they leave goes to
    # the long ones, so one huge cookie cannot starve a dozen small headers.
    shares = [0] * len(lengths)
    left = max(0, budget)
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for position, i in enumerate(order):
        share = left // (len(order) - position)
        shares[i] = min(lengths[i], share)
        left -= shares[i]
    return shares


def bounded_headers(headers: Headers, cap: int) -> Headers:
    """``headers`` within ``cap`` characters (one per byte received; names and values).

    Lines :func:`kept_in_full` keep their value; every other line keeps its
    name (cut at ``MAX_NAME_CHARS``) and a value cut to a fair share of what
    is left, ending in ``CUT_MARK``. The same object when nothing needs cutting.
    Full lines are bounded by the prober's head limits, not by ``cap``.
    """
    total = 0
    for n, v in headers.lines:
        total += len(n) + len(v)
    if total <= cap:
        return headers
    full = [kept_in_full(n) for n, _ in headers.lines]
    names = [
        n if f else _cut(n, MAX_NAME_CHARS) for (n, _), f in zip(headers.lines, full, strict=True)
    ]
    used = sum(len(n) for n in names)
    used += sum(len(v) for (_, v), f in zip(headers.lines, full, strict=True) if f)
    cut = [i for i, f in enumerate(full) if not f]
    shares = _shares([len(headers.lines[i][1]) for i in cut], cap - used)
    values = [v for _, v in headers.lines]
    for i, share in zip(cut, shares, strict=True):
        values[i] = _cut(values[i], share)
    return Headers(tuple(zip(names, values, strict=True)))


def bounded_raw_lines(lines: tuple[str, ...], cap: int) -> tuple[str, ...]:
    """Raw head lines (``Name: value``) under the rule of :func:`bounded_headers`."""
    if sum(len(line) for line in lines) <= cap:
        return lines
    full = [kept_in_full(line.split(":", 1)[0].strip()) for line in lines]
    used = sum(len(line) for line, f in zip(lines, full, strict=True) if f)
    cut = [i for i, f in enumerate(full) if not f]
    shares = _shares([len(lines[i]) for i in cut], cap - used)
    out = list(lines)
    for i, share in zip(cut, shares, strict=True):
        out[i] = _cut(out[i], max(share, min(len(out[i]), MAX_NAME_CHARS)))
    return tuple(out)
