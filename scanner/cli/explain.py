"""`cors-scanner explain`: why does the browser block (or allow) this request, and the fix.

Live (`--url`): sends the preflight the request needs and the actual request.
Offline (`--response-headers`): judges headers pasted from DevTools or `curl -i`.
Exit code: 0 when the browser would let the page read the response, 1 when it
would block it, 2 for bad input, 3 when the live request got no response.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scanner import eventloop
from scanner.cli import EXIT_FINDINGS, EXIT_NOTHING_PROBED, EXIT_OK
from scanner.cli.options import add_probe_flags, apply_probe_flags
from scanner.core.browser import (
    CorsRequest,
    Response,
    Verdict,
    console_message,
    evaluate,
    needs_preflight,
    normalize_method,
    preflight_request_headers,
    unsafe_request_header_names,
)
from scanner.core.endpoints import parse_header_line
from scanner.core.headers import MIN_ECHOED_SECRET, REDACTED, Headers
from scanner.core.observation import Observation
from scanner.core.origin import Origin
from scanner.core.plan import PROBE_COOKIE, ProbeKind, ProbeRequest
from scanner.core.variants import ProbeOrigin, VariantKind
from scanner.engine import scan_options
from scanner.errors import InputError
from scanner.hostnames import uts46_host_encoder
from scanner.prober.execute import Prober
from scanner.settings import Settings

MAX_PASTE_BYTES = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "explain",
        help="explain one CORS verdict: live against a URL, or from pasted response headers",
        description=(
            "Evaluate one cross-origin request as Chromium would and print the verdict, the "
            "console message and the fix. Exit 0 when readable, 1 when blocked, 2 for bad "
            "input, 3 when the live request got no response."
        ),
    )
    p.add_argument("--origin", required=True, help="the page's origin, e.g. https://app.acme.com")
    p.add_argument(
        "--credentials", action="store_true", help="credentials: 'include' / withCredentials"
    )
    p.add_argument("--method", default="GET", help="the request's method (default GET)")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header the page sets on the request (repeat)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="send the request live to this URL")
    source.add_argument(
        "--response-headers",
        metavar="FILE",
        help="response headers pasted from DevTools or curl -i ('-' reads stdin)",
    )
    p.add_argument(
        "--preflight-headers",
        metavar="FILE",
        help="offline: the preflight's response headers, when they differ from the actual ones",
    )
    p.add_argument(
        "--send-unsafe-method",
        action="store_true",
        help="live: send the actual request with a non-GET method (default: GET stands in)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the verdict, the console message and the fix (default); json: the same as data",
    )
    add_probe_flags(p)
    p.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Explanation:
    request: CorsRequest
    url: str | None
    verdict: Verdict
    preflight_status: int | None
    actual_status: int | None
    notes: tuple[str, ...]


def parse_pasted_headers(text: str) -> tuple[int | None, Headers]:
    """Status and header lines from `curl -i`/`curl -v` output or a DevTools copy.

    With several responses (curl -L, 100 Continue), the last one counts. A body
    after the blank line is ignored.
    """
    status: int | None = None
    lines: list[tuple[str, str]] = []
    in_body = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("< "):  # curl -v marks response lines
            line = line[2:]
        elif line.startswith(("> ", "* ")):
            continue
        stripped = line.strip()
        if stripped.upper().startswith("HTTP/"):
            parts = stripped.split()
            if len(parts) >= 2 and parts[1].isdigit():
                status, lines, in_body = int(parts[1]), [], False
                continue
        if in_body:
            continue
        if not stripped:
            if lines:
                in_body = True
            continue
        if stripped.startswith(":status:"):
            value = stripped.split(":", 2)[2].strip()
            status = int(value) if value.isdigit() else status
            continue
        name, sep, value = stripped.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise InputError(f"cannot read {stripped!r} as a header line 'Name: value'")
        lines.append((name.strip(), value.strip()))
    if not lines and status is None:
        raise InputError("no header lines found in the pasted response")
    return status, Headers.of(lines)


def _read_paste(path: str) -> str:
    if path == "-":
        data = sys.stdin.read(MAX_PASTE_BYTES + 1)
    else:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"{path}: no such file")
        data = file.read_bytes()[: MAX_PASTE_BYTES + 1].decode("latin-1")
    if len(data) > MAX_PASTE_BYTES:
        raise InputError(f"{path}: larger than {MAX_PASTE_BYTES} bytes")
    return data


def build_request(args: argparse.Namespace) -> CorsRequest:
    origin_text = args.origin.strip()
    origin = (
        "null"
        if origin_text == "null"
        else Origin.parse(origin_text, lenient=True, encode_host=uts46_host_encoder).serialize()
    )
    headers = Headers.of([parse_header_line(h) for h in args.header])
    return CorsRequest(origin, normalize_method(args.method.strip()), headers, args.credentials)


def explain_offline(request: CorsRequest, args: argparse.Namespace) -> Explanation:
    status, headers = parse_pasted_headers(_read_paste(args.response_headers))
    notes = []
    if status is None:
        notes.append("no status line in the pasted headers: assumed 200")
        status = 200
    actual = Response(status, headers)
    preflight: Response | None = None
    preflight_status: int | None = None
    if needs_preflight(request):
        if args.preflight_headers:
            pre_status, pre_headers = parse_pasted_headers(_read_paste(args.preflight_headers))
            preflight_status = pre_status if pre_status is not None else 200
            preflight = Response(preflight_status, pre_headers)
        else:
            preflight, preflight_status = actual, status
            notes.append(
                "this request needs a preflight: the same headers were judged as the preflight "
                "response; pass --preflight-headers to give the OPTIONS response separately"
            )
    verdict = evaluate(request, actual=actual, preflight=preflight)
    return Explanation(request, None, verdict, preflight_status, status, tuple(notes))


async def explain_live(
    request: CorsRequest, url: str, args: argparse.Namespace, settings: Settings
) -> Explanation | Observation:
    # Same-origin is not CORS: a page on the URL's own origin reads the
    # response whatever its headers say, and sends no preflight.
    target = Origin.from_url(url, encode_host=uts46_host_encoder).serialize()
    request = replace(request, target_origin=target)
    origin = ProbeOrigin(request.origin, VariantKind.CUSTOM)
    probes: list[ProbeRequest] = []
    notes = []
    if not request.cross_origin:
        notes.append(
            f"{request.origin} is the URL's own origin: a same-origin request is not a CORS "
            "request, so no preflight is sent and the page reads the response whatever its "
            "headers say"
        )
    if needs_preflight(request):
        probes.append(
            ProbeRequest(
                key="preflight:explain:0",
                kind=ProbeKind.PREFLIGHT,
                method="OPTIONS",
                url=url,
                origin=origin,
                headers=preflight_request_headers(request),
                cors_request=request,
            )
        )
    method = request.method
    if method not in ("GET", "HEAD") and not args.send_unsafe_method:
        notes.append(f"the actual request was sent as GET, standing in for {method}")
        method = "GET"
    lines = [("Origin", request.origin), *request.headers]
    if request.credentials:
        lines.append(("Cookie", PROBE_COOKIE))
    probes.append(
        ProbeRequest(
            key="simple:explain:0",
            kind=ProbeKind.SIMPLE,
            method=method,
            url=url,
            origin=origin,
            headers=Headers.of(lines),
            cors_request=request,
        )
    )
    limits = scan_options(apply_probe_flags(args, settings)).limits
    async with Prober(limits) as prober:
        observations = await prober.send_all(probes)
    pre_obs = observations[0] if len(observations) == 2 else None
    actual_obs = observations[-1]
    if pre_obs is not None and not pre_obs.ok:
        return pre_obs
    preflight = Response(pre_obs.status, pre_obs.headers) if pre_obs and pre_obs.status else None
    if not actual_obs.ok or actual_obs.status is None:
        if preflight is None:
            return actual_obs
        verdict = evaluate(request, actual=None, preflight=preflight)
        notes.append(f"the actual request failed: {actual_obs.error}: {actual_obs.error_detail}")
        return Explanation(request, url, verdict, preflight.status, None, tuple(notes))
    actual = Response(actual_obs.status, actual_obs.headers)
    verdict = evaluate(request, actual=actual, preflight=preflight)
    return Explanation(
        request,
        url,
        verdict,
        preflight.status if preflight else None,
        actual.status,
        tuple(notes),
    )


def fixes(request: CorsRequest, reason: str) -> list[str]:
    """Concrete fixes for a browser's reason, naming this request's values."""
    o = request.origin
    out: list[str] = []
    if "No 'Access-Control-Allow-Origin' header" in reason:
        out.append(
            f"Send 'Access-Control-Allow-Origin: {o}' (echo the origin after an exact allowlist check) and 'Vary: Origin'."
        )
        out.append(
            "nginx: add_header … always;  Apache: Header always set …  — without 'always' errors lose the header."
        )
    elif "multiple values" in reason or "contains the invalid value" in reason:
        out.append(
            f"Send exactly one 'Access-Control-Allow-Origin' header with one value: {o}. Remove the duplicate (often both the app and a proxy add it)."
        )
    elif "must not be the wildcard" in reason:
        out.append(
            f"With credentials, '*' never works: send 'Access-Control-Allow-Origin: {o}' (echoed from an allowlist) and 'Vary: Origin'."
        )
    elif "not equal to the supplied origin" in reason:
        out.append(
            f"The value must be exactly '{o}': same scheme, lowercase host, no default port, no trailing slash."
        )
    elif "Access-Control-Allow-Credentials" in reason:
        out.append(
            "Send 'Access-Control-Allow-Credentials: true' (exactly, lowercase) for this allowlisted origin."
        )
    elif "HTTP ok status" in reason:
        out.append(
            "Answer the OPTIONS preflight with 204 (or 200) before authentication and routing run; a 401/404/405 fails it."
        )
    elif "Redirect is not allowed" in reason:
        out.append(
            "The preflight was redirected (http→https, a trailing slash, a login page): call the final URL directly."
        )
    elif "is not allowed by Access-Control-Allow-Methods" in reason:
        out.append(
            f"Add {request.method} to 'Access-Control-Allow-Methods' in the preflight response."
        )
    elif "is not allowed by Access-Control-Allow-Headers" in reason:
        names = ", ".join(unsafe_request_header_names(request.headers))
        out.append(f"List the request's headers in 'Access-Control-Allow-Headers': {names}.")
    if not out:
        out.append("See docs/rules.md for the rule behind this reason.")
    out.append(
        "Express: cors({ origin: ['"
        + o
        + "'], credentials: "
        + ("true" if request.credentials else "false")
        + " }) registered before routes and error handlers."
    )
    return out


def _scrub(request: CorsRequest, text: str) -> str:
    """``text`` with the page's own header values (``--header``: credentials, API keys)
    redacted, wherever a target that echoes them put them (a verdict quotes headers)."""
    values = sorted({v for _, v in request.headers if len(v) >= MIN_ECHOED_SECRET}, key=len)
    for value in reversed(values):
        text = text.replace(value, REDACTED)
        text = text.replace(json.dumps(value)[1:-1], REDACTED)  # as escaped in JSON
    return text


def run(args: argparse.Namespace, settings: Settings) -> int:
    request = build_request(args)
    if args.url:
        from scanner.cli.scan import validate_url  # shared URL rules

        result = eventloop.run(explain_live(request, validate_url(args.url), args, settings))
        if isinstance(result, Observation):
            print(
                _scrub(
                    request,
                    f"cors-scanner: no response from {args.url}: {result.error}: "
                    f"{result.error_detail}",
                ),
                file=sys.stderr,
            )
            return EXIT_NOTHING_PROBED
        explanation = result
    else:
        explanation = explain_offline(request, args)
    if args.format == "json":
        print(_scrub(request, json.dumps(_as_json(explanation), indent=2)))
    else:
        print(_scrub(request, _as_text(explanation)))
    return EXIT_OK if explanation.verdict.readable else EXIT_FINDINGS


def _as_json(e: Explanation) -> dict[str, Any]:
    v = e.verdict
    return {
        "request": {
            "origin": e.request.origin,
            "method": e.request.method,
            # The page's own header values may be credentials: never echoed.
            "headers": e.request.headers.redacted(frozenset(e.request.headers.names())).as_list(),
            "credentials": e.request.credentials,
            "url": e.url,
        },
        "readable": v.readable,
        "preflight_needed": v.preflight_needed,
        "preflight_ok": None if v.preflight is None else v.preflight.ok,
        "preflight_status": e.preflight_status,
        "status": e.actual_status,
        "reason": v.reason,
        "console": console_message(e.url or "<url>", e.request.origin, v.reason)
        if v.reason
        else None,
        "exposed_headers": list(v.exposed_headers),
        "fixes": fixes(e.request, v.reason) if v.reason else [],
        "notes": list(e.notes),
    }


def _as_text(e: Explanation) -> str:
    v = e.verdict
    mode = "include" if e.request.credentials else "same-origin (no credentials cross-origin)"
    lines = [
        f"Request:   {e.request.method} {e.url or '(offline)'} from {e.request.origin}, credentials {mode}",
    ]
    if not e.request.cross_origin:
        lines.append("Preflight: not sent (same-origin: not a CORS request)")
    elif v.preflight_needed:
        unsafe = unsafe_request_header_names(e.request.headers)
        why = []
        if e.request.method not in ("GET", "HEAD", "POST"):
            why.append(f"method {e.request.method}")
        if unsafe:
            why.append("headers " + ", ".join(unsafe))
        state = "not observed" if v.preflight is None else ("passes" if v.preflight.ok else "fails")
        status = f" (status {e.preflight_status})" if e.preflight_status is not None else ""
        lines.append(
            f"Preflight: needed for {' and '.join(why) or 'this request'}{status}: {state}"
        )
    else:
        lines.append("Preflight: not needed (safelisted method and headers)")
    if v.readable and not e.request.cross_origin:
        lines.append("Verdict:   ALLOWED: same-origin, the page reads the response (no CORS)")
    elif v.readable:
        lines.append("Verdict:   ALLOWED: the page can read the response")
        if v.exposed_headers:
            lines.append(f"Exposed:   {', '.join(v.exposed_headers)}")
    else:
        lines.append("Verdict:   BLOCKED")
        lines.append(
            f"Console:   {console_message(e.url or '<url>', e.request.origin, v.reason or '')}"
        )
        for i, fix in enumerate(fixes(e.request, v.reason or "")):
            lines.append(("Fix:       " if i == 0 else "           ") + fix)
    for note in e.notes:
        lines.append(f"Note:      {note}")
    return "\n".join(lines)
