"""The SSRF guard: URL checks when a hook is saved, and the connect-time guard on every request."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from scanner.alerts.retry import DeliveryError, Outcome
from scanner.alerts.sender import Channel, PreparedRequest, build_hook_session, deliver
from scanner.errors import InvalidURL, UnsafeURL
from scanner.ssrf import (
    AddressClass,
    AddressPolicy,
    GuardedResolver,
    check_hook_url,
    check_url,
    classify_address,
    guard_socket_factory,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    ServeApp = Callable[..., Awaitable[str]]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", AddressClass.PUBLIC),
        ("2606:4700:4700::1111", AddressClass.PUBLIC),
        ("127.0.0.1", AddressClass.LOOPBACK),
        ("127.255.255.254", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK),
        ("10.0.0.1", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE),
        ("172.31.255.255", AddressClass.PRIVATE),
        ("172.32.0.1", AddressClass.PUBLIC),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("fc00::1", AddressClass.PRIVATE),
        ("fd12:3456::1", AddressClass.PRIVATE),
        ("100.64.0.1", AddressClass.SHARED),
        ("100.127.255.254", AddressClass.SHARED),
        ("169.254.1.1", AddressClass.LINK_LOCAL),
        ("fe80::1", AddressClass.LINK_LOCAL),
        ("fe80::1%1", AddressClass.LINK_LOCAL),
        ("169.254.169.254", AddressClass.METADATA),
        ("fd00:ec2::254", AddressClass.METADATA),
        ("100.100.100.200", AddressClass.METADATA),
        ("0.0.0.0", AddressClass.UNSPECIFIED),
        ("0.1.2.3", AddressClass.UNSPECIFIED),
        ("::", AddressClass.UNSPECIFIED),
        ("224.0.0.1", AddressClass.MULTICAST),
        ("ff02::1", AddressClass.MULTICAST),
        ("240.0.0.1", AddressClass.RESERVED),
        ("255.255.255.255", AddressClass.RESERVED),
        ("192.0.2.10", AddressClass.RESERVED),  # documentation
        ("198.18.0.1", AddressClass.RESERVED),  # benchmarking
        ("2001:db8::1", AddressClass.RESERVED),
        ("::127.0.0.1", AddressClass.RESERVED),  # deprecated IPv4-compatible
        # IPv6 forms carrying an IPv4 address are judged by that address.
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
        ("::ffff:169.254.169.254", AddressClass.METADATA),
        ("::ffff:10.0.0.1", AddressClass.PRIVATE),
        ("::ffff:8.8.8.8", AddressClass.PUBLIC),
        ("64:ff9b::7f00:1", AddressClass.LOOPBACK),  # NAT64
        ("64:ff9b::a9fe:a9fe", AddressClass.METADATA),
        ("64:ff9b:1::1", AddressClass.PRIVATE),
        ("2002:a9fe:a9fe::1", AddressClass.METADATA),  # 6to4
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressClass.RESERVED),  # Teredo
    ],
)
def test_address_classes(address: str, kind: AddressClass) -> None:
    assert classify_address(ipaddress.ip_address(address)) is kind


def test_policy_flags() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    private = ipaddress.ip_address("10.1.2.3")
    shared = ipaddress.ip_address("100.64.1.1")
    link_local = ipaddress.ip_address("169.254.7.7")
    metadata = ipaddress.ip_address("169.254.169.254")
    multicast = ipaddress.ip_address("224.0.0.1")
    public = ipaddress.ip_address("93.184.216.34")

    strict = AddressPolicy()
    assert strict.permits(public)
    assert not any(strict.permits(a) for a in (loopback, private, shared, link_local, metadata))

    # Scan targets (issue 6): internal networks yes, link-local and metadata no.
    targets = AddressPolicy(allow_private=True, allow_loopback=True)
    assert targets.permits(private)
    assert targets.permits(shared)
    assert targets.permits(loopback)
    assert not targets.permits(link_local)
    assert not targets.permits(metadata)

    everything = AddressPolicy(True, True, True, True)
    assert everything.permits(metadata)
    assert everything.permits(link_local)
    assert not everything.permits(multicast)  # never allowed
    assert everything.refusal(multicast) == "a multicast address (never allowed)"
    assert strict.refusal(metadata) == "a metadata address (allow_metadata is off)"


async def test_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(UnsafeURL, match=r"127\.0\.0\.1 is a loopback address") as caught:
        await check_hook_url("http://127.0.0.1:8080/hook")
    assert caught.value.code == "unsafe_url"
    await check_hook_url("http://127.0.0.1:8080/hook", allow_loopback=True)


async def test_a_hostname_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(UnsafeURL, match=r"localhost resolves to .*loopback"):
        await check_hook_url("http://localhost:8080/hook")
    await check_hook_url("http://localhost:8080/hook", allow_loopback=True)


async def test_ipv4_mapped_ipv6_loopback_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        await check_hook_url("http://[::ffff:127.0.0.1]:8080/hook")
    with pytest.raises(UnsafeURL, match="loopback"):
        await check_hook_url("http://[::1]/hook")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
    ],
)
async def test_metadata_is_refused_even_when_everything_else_is_allowed(url: str) -> None:
    with pytest.raises(UnsafeURL, match="metadata"):
        await check_hook_url(url, allow_private=True, allow_loopback=True)
    # Only an explicit allowance lets it through (no name resolution needed for literals).
    if "google" not in url:
        await check_url(url, AddressPolicy(allow_metadata=True))


@pytest.mark.parametrize(
    ("url", "allowed_with_private"),
    [
        ("http://10.0.0.8/hook", True),
        ("http://192.168.1.20:9000/hook", True),
        ("http://100.64.3.4/hook", True),
        ("http://[fd12::1]/hook", True),
        ("http://169.254.10.10/hook", False),  # link-local is not "private"
        ("http://[fe80::1]/hook", False),
        ("http://0.0.0.0:8080/hook", False),
        ("http://224.0.0.1/hook", False),
        ("http://255.255.255.255/hook", False),
    ],
)
async def test_internal_addresses(url: str, allowed_with_private: bool) -> None:
    with pytest.raises(UnsafeURL, match="refused"):
        await check_hook_url(url)
    if allowed_with_private:
        await check_hook_url(url, allow_private=True)
    else:
        with pytest.raises(UnsafeURL):
            await check_hook_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
    ],
)
async def test_schemes_and_credentials_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeURL, match=message):
        await check_hook_url(url, allow_loopback=True, allow_private=True)


@pytest.mark.parametrize("url", ["http:///no-host", "https://[::1/", "http://example.com:99999/"])
async def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidURL):
        await check_hook_url(url)


@pytest.mark.parametrize("url", ["http://0x7f.1/", "http://2130706433/", "http://0177.0.0.1/"])
async def test_legacy_numeric_hosts_are_judged_by_what_they_resolve_to(url: str) -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        await check_hook_url(url)


class FixedResolver(AbstractResolver):
    """DNS as a table, so a test can make a name resolve anywhere (even change its mind)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers  # host -> successive answers (the last one sticks)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


async def test_a_name_with_any_internal_address_is_refused() -> None:
    resolver = FixedResolver({"mixed.example": [["93.184.216.34", "10.0.0.5"]]})
    with pytest.raises(UnsafeURL, match=r"mixed\.example resolves to 10\.0\.0\.5, a private"):
        await check_hook_url("https://mixed.example/hook", resolver=resolver)
    await check_hook_url(
        "https://public.example/hook",
        resolver=FixedResolver({"public.example": [["93.184.216.34", "2606:2800::1"]]}),
    )


async def test_a_name_that_does_not_resolve_is_invalid() -> None:
    with pytest.raises(InvalidURL, match=r"cannot resolve nowhere\.example"):
        await check_hook_url("https://nowhere.example/hook", resolver=FixedResolver({}))


def recorder() -> tuple[web.Application, list[str]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return app, seen


def request_to(url: str) -> PreparedRequest:
    return PreparedRequest(Channel.WEBHOOK, url, (("Content-Type", "application/json"),), b"{}")


async def test_the_guard_blocks_loopback_at_connect_time(serve_app: ServeApp) -> None:
    app, seen = recorder()
    base = await serve_app(app)
    port = base.rsplit(":", 1)[1]
    async with build_hook_session(AddressPolicy()) as session:
        # An IP literal (aiohttp skips the resolver: the socket factory stops it)...
        literal = await deliver(session, request_to(f"{base}/a"), timeout=5)
        # ...and a name (the resolver drops every address it resolves to).
        named = await deliver(session, request_to(f"http://localhost:{port}/b"), timeout=5)
    for result in (literal, named):
        assert result.status is None
        assert result.error is DeliveryError.BLOCKED
        assert result.classification.outcome is Outcome.FAIL
        assert "loopback" in result.error_detail
    assert seen == []  # nothing reached the receiver

    async with build_hook_session(AddressPolicy(allow_loopback=True)) as session:
        allowed = await deliver(session, request_to(f"http://localhost:{port}/c"), timeout=5)
    assert allowed.status == 204
    assert seen == ["/c"]


async def test_dns_rebinding_cannot_slip_past_the_guard(serve_app: ServeApp) -> None:
    app, seen = recorder()
    base = await serve_app(app)
    port = base.rsplit(":", 1)[1]
    # Public when the hook is saved, loopback by the time we deliver.
    resolver = FixedResolver({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    url = f"http://rebind.example:{port}/hook"
    await check_hook_url(url, resolver=resolver)

    async with build_hook_session(AddressPolicy(), resolver=resolver) as session:
        result = await deliver(session, request_to(url), timeout=5)

    assert resolver.lookups == ["rebind.example", "rebind.example"]
    assert result.error is DeliveryError.BLOCKED
    assert "rebind.example resolves only to refused addresses" in result.error_detail
    assert seen == []


async def test_the_guard_keeps_permitted_addresses_of_a_mixed_answer() -> None:
    inner = FixedResolver({"mixed.example": [["169.254.169.254", "93.184.216.34", "::1"]]})
    resolver = GuardedResolver(AddressPolicy(), inner)
    kept = await resolver.resolve("mixed.example", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in kept] == ["93.184.216.34"]
    await resolver.close()


async def test_the_socket_factory_alone_refuses_every_address_of_a_name(
    serve_app: ServeApp,
) -> None:
    app, seen = recorder()
    base = await serve_app(app)
    port = base.rsplit(":", 1)[1]
    # No guarded resolver: the name's two loopback addresses reach the socket
    # factory, which must refuse both (aiohappyeyeballs then merges the errors).
    resolver = FixedResolver({"twice.example": [["127.0.0.1", "127.0.0.2"]]})
    connector = aiohttp.TCPConnector(
        resolver=resolver, socket_factory=guard_socket_factory(AddressPolicy())
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        result = await deliver(session, request_to(f"http://twice.example:{port}/"), timeout=5)
    assert result.error is DeliveryError.BLOCKED
    assert result.classification.outcome is Outcome.FAIL
    assert seen == []
