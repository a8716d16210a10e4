"""The Slack channel: one incoming-webhook message per scan, summarising a batch of events.

Slack posts about one message per second per channel, so a scan's findings
go out together, most severe first, not one message each. Limits we respect
(api.slack.com/messaging/webhooks, Block Kit reference):

- at most :data:`MAX_BLOCKS` blocks; beyond that a last block says how many
  more there are and links to the list;
- a section's text at most :data:`SECTION_TEXT_LIMIT` characters (Slack
  answers 400 above it): evidence is cut, with a link to the full finding;
- ``text`` is the notification / fallback text and is always present.

Every string we did not write ourselves (titles, URLs, owners, evidence a
hostile server sent) is escaped: Slack reads ``<...>`` as markup, so an
unescaped ``<!channel>`` in a header value would notify a whole channel and
``<https://evil|click>`` would dress up a link. Link unfurling is off: Slack
would otherwise fetch URLs from the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from scanner.alerts.envelope import AlertEvent, EventType, truncate
from scanner.alerts.sender import DEFAULT_USER_AGENT, Channel, PreparedRequest
from scanner.errors import InputError

__all__ = [
    "MAX_BLOCKS",
    "SECTION_TEXT_LIMIT",
    "build_slack_request",
    "escape",
]

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
FALLBACK_TEXT_LIMIT = 1000
# Caps on single fields before escaping, so one long URL cannot crowd out the evidence.
_FIELD_CAPS = {"title": 300, "url": 500, "owner": 100, "rule": 200, "change": 200, "heading": 300}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BARE_MENTION = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
# How each type reads in a message, in the order counts are listed: what
# needs a human first. Counts use the label in lower case ("2 new, 1 resolved").
_LABELS = {
    EventType.ENDPOINT_UNREACHABLE: "Unreachable",
    EventType.SCAN_FAILED: "Scan failed",
    EventType.LEGIT_ORIGIN_BLOCKED: "Legit origin blocked",
    EventType.HEADER_DRIFT: "Header drift",
    EventType.FINDING_NEW: "New",
    EventType.FINDING_REOPENED: "Reopened",
    EventType.SEVERITY_RAISED: "Severity raised",
    EventType.SLA_BREACHED: "Past SLA",
    EventType.TRIAGE_EXPIRED: "Triage expired",
    EventType.UNSUPPRESSED: "Unsuppressed",
    EventType.NOT_VERIFIED: "Not re-verified",
    EventType.SEVERITY_LOWERED: "Severity lowered",
    EventType.RULE_CHANGE: "Rule change",
    EventType.SUPPRESSED: "Suppressed",
    EventType.FINDING_RESOLVED: "Resolved",
    EventType.ENDPOINT_REACHABLE: "Reachable again",
    EventType.SCAN_COMPLETED: "Scan completed",
    EventType.HOOK_TEST: "Test",
}
# Scalar fields of before/after worth showing as "name: old → new".
_CHANGE_FIELDS = ("status", "severity", "reopen_count")

# (text, trusted): trusted text is our own mrkdwn, copied as is and never cut
# in the middle; untrusted text is escaped and may be cut anywhere.
_Segment = tuple[str, bool]


def escape(text: str) -> str:
    """Make untrusted text inert in Slack mrkdwn.

    Escapes Slack's three control characters ``&``, ``<``, ``>`` (so
    ``<!channel>`` is shown, not sent), and puts an invisible word joiner
    after the ``@`` of a bare ``@channel``/``@here``/``@everyone``, which
    Slack turns into mentions when a workspace links names.
    """
    return "".join(_escaped_pieces(text))


def _escaped_pieces(text: str) -> list[str]:
    # One piece per source character, so text can be cut between any two.
    defanged = _BARE_MENTION.sub("@\u2060\\1", text)
    return [_ESCAPES.get(c, c) for c in defanged]


def build_slack_request(
    url: str,
    events: Sequence[AlertEvent],
    *,
    heading: str,
    more_link: str | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
) -> PreparedRequest:
    """One Slack message for ``events`` (a scan's batch); InputError if there are none.

    ``heading`` opens the message ("Nightly scan of payments-api"); ``more_link``
    (the scan's findings in our API) is linked when events do not all fit.
    """
    if not events:
        raise InputError("slack: a message needs at least one event")
    message = _message(events, heading=heading, more_link=more_link)
    # ASCII JSON: a hostile string cannot turn into invalid UTF-8 (and a 400).
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    headers = (("Content-Type", "application/json"), ("User-Agent", user_agent))
    return PreparedRequest(Channel.SLACK, url, headers, body)


def _message(
    events: Sequence[AlertEvent], *, heading: str, more_link: str | None
) -> dict[str, Any]:
    ordered = sorted(events, key=_order)
    counts = _counts(ordered)
    heading_text = escape(truncate(heading, _FIELD_CAPS["heading"]))
    blocks: list[dict[str, Any]] = [_section(f"*{heading_text}*\n{escape(counts)}")]
    room = MAX_BLOCKS - len(blocks)
    shown = ordered if len(ordered) <= room else ordered[: room - 1]
    blocks.extend(_section(_event_text(event)) for event in shown)
    hidden = len(ordered) - len(shown)
    if hidden:
        more = f"…and {hidden} more"
        if more_link is not None:
            more += f": {_link(more_link, 'see all')}"
        blocks.append(_section(more))
    fallback = truncate(
        f"{truncate(heading, _FIELD_CAPS['heading'])}: {counts}", FALLBACK_TEXT_LIMIT
    )
    return {
        "text": escape(fallback),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _order(event: AlertEvent) -> tuple[int, int]:
    # Regressions first, good news (resolved, suppressed) last; then by severity.
    if event.is_regression:
        group = 0
    elif event.type in (EventType.FINDING_RESOLVED, EventType.SUPPRESSED):
        group = 2
    else:
        group = 1
    rank = event.severity.rank if event.severity is not None else -1
    return (group, -rank)


def _counts(events: Sequence[AlertEvent]) -> str:
    tally: dict[EventType, int] = {}
    for event in events:
        tally[event.type] = tally.get(event.type, 0) + 1
    return ", ".join(
        f"{tally[kind]} {label.lower()}" for kind, label in _LABELS.items() if kind in tally
    )


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _link(href: str, label: str) -> str:
    # In <href|label> a '|' or '>' in href would end it early: percent-encode
    # the one, escape the other (with & and <, as Slack asks).
    return f"<{escape(href.replace('|', '%7C'))}|{escape(label)}>"


def _event_text(event: AlertEvent) -> str:
    target = event.link("finding") or event.link("scan") or event.link("endpoint")
    label = _LABELS[event.type]
    severity = f"*{event.severity.value.upper()}* · " if event.severity is not None else ""
    title = truncate(event.title, _FIELD_CAPS["title"])
    segments: list[_Segment] = [(f"{severity}{label} · ", True)]
    if target is not None:
        segments.append((_link(target, title), True))
    else:
        segments.append((title, False))
    endpoint = event.endpoint
    if endpoint is not None:
        segments.append(("\n", True))
        segments.append((f"{endpoint.method} {truncate(endpoint.url, _FIELD_CAPS['url'])}", False))
        if endpoint.owner:
            segments.append((" · owner ", True))
            segments.append((truncate(endpoint.owner, _FIELD_CAPS["owner"]), False))
    if event.rule_id:
        segments.append(("\nrule ", True))
        segments.append((truncate(event.rule_id, _FIELD_CAPS["rule"]), False))
    for name, old, new in _changes(event):
        segments.append((f"\n{name}: ", True))
        segments.append((truncate(old, _FIELD_CAPS["change"]), False))
        segments.append((" → ", True))
        segments.append((truncate(new, _FIELD_CAPS["change"]), False))
    if event.summary:
        segments.append(("\n", True))
        segments.append((event.summary, False))
    more = f"… {_link(target, 'more')}" if target is not None else "… (truncated)"
    return _fit(segments, SECTION_TEXT_LIMIT, more)


def _changes(event: AlertEvent) -> list[tuple[str, str, str]]:
    """``(field, before, after)`` for the scalar fields the change is about."""
    before, after = event.before or {}, event.after or {}
    found = []
    for name in _CHANGE_FIELDS:
        old, new = before.get(name), after.get(name)
        scalar = all(v is None or isinstance(v, str | int | float) for v in (old, new))
        if scalar and (old is not None or new is not None) and old != new:
            shown = ["-" if v is None else str(v) for v in (old, new)]
            found.append((name, shown[0], shown[1]))
    return found


def _fit(segments: Sequence[_Segment], limit: int, more: str) -> str:
    """Join segments (escaping untrusted ones) in at most ``limit`` characters.

    When everything does not fit, cut at a character boundary of the escaped
    text (never inside an ``&amp;`` or one of our links) and end with ``more``.
    """
    full = "".join(text if trusted else escape(text) for text, trusted in segments)
    if len(full) <= limit:
        return full
    budget = limit - len(more)
    out: list[str] = []
    used = 0
    for text, trusted in segments:
        pieces = [text] if trusted else _escaped_pieces(text)
        for piece in pieces:
            if used + len(piece) > budget:
                return "".join(out) + more
            out.append(piece)
            used += len(piece)
    return "".join(out) + more  # pragma: no cover - full fitted, handled above
