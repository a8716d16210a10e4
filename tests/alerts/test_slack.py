"""Slack: one message per batch, hostile text made inert, Slack's size limits respected."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType
from scanner.alerts.retry import Outcome
from scanner.alerts.sender import Channel, deliver
from scanner.alerts.slack import MAX_BLOCKS, SECTION_TEXT_LIMIT, build_slack_request, escape
from scanner.core.severity import Severity
from scanner.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp

    MakeEvent = Callable[..., AlertEvent]
    ServeApp = Callable[..., Awaitable[str]]

HOSTILE = "<!channel> ping & <https://evil.example|click here> >_< @here"
FINDING_LINK = "https://cors.example.com/api/v1/findings/1001"
OUR_LINK = re.compile(r"<https://cors\.example\.com/api/v1/[a-z]+/\d+\|[^<>]*>")


def message(events: list[AlertEvent], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("heading", "Nightly scan")
    request = build_slack_request("https://hooks.slack.com/services/T/B/X", events, **kwargs)
    assert request.channel is Channel.SLACK
    decoded: dict[str, Any] = json.loads(request.body)
    return decoded


def texts(msg: dict[str, Any]) -> list[str]:
    return [msg["text"]] + [block["text"]["text"] for block in msg["blocks"]]


def without_our_links(text: str) -> str:
    return OUR_LINK.sub("", text)


def test_escape() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&lt;") == "&amp;lt;"  # already-escaped text stays literal
    assert escape("@channel @Here @everyone") == "@\u2060channel @\u2060Here @\u2060everyone"
    assert escape("mail@channels.example") == "mail@channels.example"  # not a mention


def test_hostile_evidence_cannot_ping_or_fake_links(make_event: MakeEvent) -> None:
    event = make_event(
        summary=f"ACAO: {HOSTILE}",
        title=f"title {HOSTILE}",
        endpoint=EndpointRef(7, "GET", "https://api.example.com/?q=<!everyone>", owner=HOSTILE),
        before={"status": "<!subteam^S123>"},
        after={"status": "x&y"},
    )
    msg = message([event], heading=f"Scan of {HOSTILE}")
    for text in texts(msg):
        rest = without_our_links(text)
        assert "<" not in rest
        assert ">" not in rest
        assert "<!channel>" not in text
        assert "<!everyone>" not in text
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None  # every & is an entity
    section = msg["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; ping &amp; &lt;https://evil.example|click here&gt;" in section
    assert "status: &lt;!subteam^S123&gt; → x&amp;y" in section
    assert "@\u2060here" in section
    assert msg["unfurl_links"] is False
    assert msg["unfurl_media"] is False


def test_section_text_is_capped_with_a_link_to_the_finding(make_event: MakeEvent) -> None:
    event = make_event(summary="&" * 10_000)  # escapes to five times its length
    section = message([event])["blocks"][1]["text"]["text"]
    assert len(section) <= SECTION_TEXT_LIMIT
    assert section.endswith(f"… <{FINDING_LINK}|more>")
    body = section.removesuffix(f"… <{FINDING_LINK}|more>")
    assert body.endswith("&amp;")  # cut between entities, never inside one
    assert len(section) > SECTION_TEXT_LIMIT - 10  # cut as late as possible


def test_long_text_without_links_is_still_capped(make_event: MakeEvent) -> None:
    event = make_event(summary="<" * 5000, links=())
    section = message([event])["blocks"][1]["text"]["text"]
    assert len(section) <= SECTION_TEXT_LIMIT
    assert section.endswith("… (truncated)")
    assert "<" not in section


def test_a_batch_is_one_message_of_at_most_50_blocks(make_event: MakeEvent) -> None:
    events = [make_event(title=f"finding {i}", finding_id=i) for i in range(120)]
    msg = message(events, more_link="https://cors.example.com/api/v1/scans/42/findings")
    blocks = msg["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert blocks[0]["text"]["text"] == "*Nightly scan*\n120 new"
    assert msg["text"] == "Nightly scan: 120 new"
    hidden = MAX_BLOCKS - 2  # the heading and the "more" block are not findings
    assert blocks[-1]["text"]["text"] == (
        f"…and {120 - hidden} more: <https://cors.example.com/api/v1/scans/42/findings|see all>"
    )
    assert all(block["type"] == "section" for block in blocks)
    assert all(block["text"]["type"] == "mrkdwn" for block in blocks)


def test_exactly_49_events_fit_without_a_more_block(make_event: MakeEvent) -> None:
    blocks = message([make_event() for _ in range(49)])["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert all(b["text"]["text"].startswith("*CRITICAL* · New") for b in blocks[1:])


def test_regressions_first_then_by_severity_good_news_last(make_event: MakeEvent) -> None:
    events = [
        make_event(
            type=EventType.FINDING_RESOLVED,
            severity=Severity.CRITICAL,
            title="fixed",
            is_regression=False,
        ),
        make_event(severity=Severity.LOW, title="low one"),
        make_event(
            type=EventType.SEVERITY_LOWERED,
            severity=Severity.CRITICAL,
            title="lowered",
            is_regression=False,
            before={"severity": "critical", "summary": "was"},
            after={"severity": "medium", "summary": "is"},
        ),
        make_event(
            type=EventType.LEGIT_ORIGIN_BLOCKED, severity=Severity.HIGH, title="front end broken"
        ),
        make_event(severity=Severity.CRITICAL, title="critical one"),
    ]
    msg = message(events)
    order = [b["text"]["text"] for b in msg["blocks"][1:]]
    assert "critical one" in order[0]
    assert "front end broken" in order[1]
    assert "low one" in order[2]
    assert "lowered" in order[3]
    assert "fixed" in order[4]
    assert order[1].startswith("*HIGH* · Legit origin blocked · ")
    assert "\nseverity: critical → medium" in order[3]
    assert msg["blocks"][0]["text"]["text"].endswith(
        "1 legit origin blocked, 2 new, 1 severity lowered, 1 resolved"
    )


def test_event_section_content(make_event: MakeEvent) -> None:
    section = message([make_event()])["blocks"][1]["text"]["text"]
    assert section == (
        f"*CRITICAL* · New · <{FINDING_LINK}|Any origin is reflected with credentials>\n"
        "GET https://api.example.com/v1/accounts · owner payments-team\n"
        "rule reflect_any_origin_credentials\n"
        "Origin https://evil.example -&gt; ACAO https://evil.example, ACAC true"
    )


def test_the_webhook_url_is_a_secret_kept_out_of_repr(make_event: MakeEvent) -> None:
    url = "https://hooks.slack.com/services/T000/B000/s3cr3tT0k3n"
    request = build_slack_request(url, [make_event()], heading="h")
    assert "s3cr3tT0k3n" not in repr(request)
    assert "hooks.slack.com" in repr(request)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InputError, match="at least one event"):
        build_slack_request("https://hooks.slack.com/x", [], heading="h")


def slack_emulator(answer: web.Response | None = None) -> tuple[web.Application, list[Any]]:
    """Answers like Slack: 400 invalid_payload when limits are broken, else 200 ``ok``."""
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        message = await request.json()
        seen.append(message)
        if answer is not None:
            return answer
        blocks = message.get("blocks", [])
        if not message.get("text") or len(blocks) > MAX_BLOCKS:
            return web.Response(status=400, text="invalid_payload")
        if any(len(b["text"]["text"]) > SECTION_TEXT_LIMIT for b in blocks):
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T/B/X", handle)
    return app, seen


async def test_a_big_hostile_batch_is_accepted_by_a_slack_like_receiver(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession, make_event: MakeEvent
) -> None:
    app, seen = slack_emulator()
    base = await serve_app(app)
    events = [make_event(summary=HOSTILE * 200, finding_id=i) for i in range(80)]
    request = build_slack_request(f"{base}/services/T/B/X", events, heading="Nightly")

    result = await deliver(hook_session, request, timeout=5)

    assert result.status == 200
    assert result.response_excerpt == "ok"
    assert result.classification.outcome is Outcome.SUCCESS
    assert len(seen) == 1  # one message for the whole batch


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome"),
    [
        (200, "", {}, Outcome.FAIL),  # 200 without "ok": not Slack
        (400, "invalid_payload", {}, Outcome.FAIL),
        (404, "channel_not_found", {}, Outcome.FAIL),
        (410, "channel_is_archived", {}, Outcome.DISABLE),
        (429, "rate_limited", {"Retry-After": "30"}, Outcome.RETRY),
        (500, "rollup_error", {}, Outcome.RETRY),
    ],
)
async def test_slack_answers_are_classified(
    serve_app: ServeApp,
    hook_session: aiohttp.ClientSession,
    make_event: MakeEvent,
    status: int,
    body: str,
    headers: dict[str, str],
    outcome: Outcome,
) -> None:
    app, _ = slack_emulator(web.Response(status=status, text=body, headers=headers))
    base = await serve_app(app)
    request = build_slack_request(f"{base}/services/T/B/X", [make_event()], heading="h")

    result = await deliver(hook_session, request, timeout=5)

    assert result.status == status
    assert result.classification.outcome is outcome
    assert result.response_excerpt == body
    assert result.retry_after == (30.0 if headers else None)
