"""Origins as browsers parse and serialise them (HTML "origin", URL standard hosts).

An origin is a (scheme, host, port) tuple or the opaque origin, serialised
``null``. Serialisation drops the scheme's default port, lowercases the host,
turns internationalised names into punycode and brackets IPv6 addresses; it
never has a path or a trailing slash. Comparison in the CORS check is on the
serialisation, byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from scanner.errors import InvalidOrigin, InvalidURL

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}

# What may appear in a host once it is ASCII. The URL standard forbids these
# code points in a domain; we are stricter than a browser for the rest so that
# every Origin we build is a valid header value.
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20\x7f#%/:<>?@\[\\\]^|]")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*\Z")

HostEncoder = Callable[[str], str]
"""Maps a Unicode host to its ASCII form as browsers do (UTS #46, non-transitional).

There is one such mapping in cors-scanner, ``scanner.hostnames.uts46_host_encoder``
(it needs the ``idna`` package's tables, so the pure core receives it as a
value). The core's default, :func:`ascii_host_encoder`, maps nothing: it
refuses an internationalised host instead of guessing with another mapping
(the standard library's IDNA 2003 codec turns ``straße.de`` into
``strasse.de``, a different host from the browser's ``xn--strae-oqa.de``)."""


_USERINFO = re.compile(r"(//)[^/?#@]*@")


def masked_url(url: str) -> str:
    """``url`` with any user name and password masked, for error messages and logs."""
    return _USERINFO.sub(r"\1***@", url) if isinstance(url, str) else repr(url)


def ascii_host_encoder(host: str) -> str:
    """The default :data:`HostEncoder`: refuses every internationalised host (see there)."""
    raise InvalidOrigin(
        f"host {host!r} is internationalised: it needs the browser's UTS #46 mapping "
        "(pass encode_host=scanner.hostnames.uts46_host_encoder)"
    )


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """A tuple origin, or the opaque origin when ``opaque`` is true."""

    scheme: str
    host: str
    port: int | None = None
    opaque: bool = False

    # -- constructors -------------------------------------------------------

    @classmethod
    def null(cls) -> Origin:
        return cls("", "", None, opaque=True)

    @classmethod
    def parse(
        cls, text: str, *, lenient: bool = False, encode_host: HostEncoder = ascii_host_encoder
    ) -> Origin:
        """Parse an origin: ``null`` or ``scheme://host[:port]``.

        ``lenient`` also accepts what people write in allowlists: one trailing
        slash and upper case. A path, query, userinfo or fragment is always an
        error, because the author meant something an origin cannot express.
        """
        if not isinstance(text, str):
            raise InvalidOrigin(f"expected a string, got {type(text).__name__}")
        raw = text.strip() if lenient else text
        if raw == "null":
            return cls.null()
        if any(c in raw for c in "\r\n\t\0 "):
            raise InvalidOrigin(f"{text!r}: an origin has no spaces or control characters")
        if "://" not in raw:
            raise InvalidOrigin(f"{text!r}: expected scheme://host[:port] or null")
        scheme, _, rest = raw.partition("://")
        if lenient and rest.endswith("/") and rest.count("/") == 1:
            rest = rest[:-1]
        if any(c in rest for c in "/?#"):
            raise InvalidOrigin(f"{text!r}: an origin has no path, query or fragment")
        if "@" in rest:
            raise InvalidOrigin(f"{text!r}: an origin has no user name or password")
        return cls._build(scheme, rest, text, encode_host)

    @classmethod
    def from_url(cls, url: str, *, encode_host: HostEncoder = ascii_host_encoder) -> Origin:
        """The origin of an absolute URL (what a browser would send from a page there)."""
        if not isinstance(url, str) or any(c in url for c in "\r\n\t\0 "):
            raise InvalidURL(f"{masked_url(url)!r}: a URL has no spaces or control characters")
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise InvalidURL(f"{masked_url(url)!r}: {exc}") from exc
        if not parts.scheme or not parts.netloc:
            raise InvalidURL(
                f"{masked_url(url)!r}: expected an absolute URL such as https://host/path"
            )
        netloc = parts.netloc.rpartition("@")[2]
        try:
            return cls._build(parts.scheme, netloc, masked_url(url), encode_host)
        except InvalidOrigin as exc:
            raise InvalidURL(str(exc)) from exc

    @classmethod
    def _build(cls, scheme: str, hostport: str, text: str, encode_host: HostEncoder) -> Origin:
        scheme = scheme.lower()
        if not _SCHEME.match(scheme):
            raise InvalidOrigin(f"{text!r}: {scheme!r} is not a URL scheme")
        host, port = _split_host_port(hostport, text)
        host = canonical_host(host, text, encode_host)
        if port is not None and port == DEFAULT_PORTS.get(scheme):
            port = None
        return cls(scheme, host, port)

    # -- views ----------------------------------------------------------------

    def serialize(self) -> str:
        """The ASCII serialisation a browser puts in the Origin header."""
        if self.opaque:
            return "null"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}"

    def __str__(self) -> str:
        return self.serialize()

    @property
    def effective_port(self) -> int | None:
        return self.port if self.port is not None else DEFAULT_PORTS.get(self.scheme)

    @property
    def is_ip(self) -> bool:
        return is_ip_host(self.host)

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def with_scheme(self, scheme: str) -> Origin:
        """The same host under another scheme, the port kept only when explicit.

        An explicit port that is the new scheme's default is dropped, as a
        browser would: ``https://a.com:80`` under http is ``http://a.com``.
        """
        port = self.port if self.port != DEFAULT_PORTS.get(scheme) else None
        return Origin(scheme, self.host, port)

    def with_host(self, host: str) -> Origin:
        return Origin(self.scheme, host, self.port)

    def same_origin(self, other: Origin) -> bool:
        """HTML's "same origin": opaque origins are never the same as anything here."""
        if self.opaque or other.opaque:
            return False
        return (self.scheme, self.host, self.effective_port) == (
            other.scheme,
            other.host,
            other.effective_port,
        )


def _split_host_port(hostport: str, text: str) -> tuple[str, int | None]:
    if not hostport:
        raise InvalidOrigin(f"{text!r}: the host is empty")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidOrigin(f"{text!r}: unterminated IPv6 address")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidOrigin(f"{text!r}: unexpected text after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = hostport.rpartition(":")
        if not sep:
            host, port_text = hostport, None
        else:
            port_text = port_text_raw
    port: int | None = None
    if port_text is not None and port_text != "":
        if not port_text.isdigit() or not port_text.isascii():
            raise InvalidOrigin(f"{text!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if port > 65535:
            raise InvalidOrigin(f"{text!r}: port {port} is out of range (0-65535)")
    return host, port


def canonical_host(host: str, text: str = "", encode_host: HostEncoder = ascii_host_encoder) -> str:
    """The URL standard's host parser, for the hosts an origin can carry."""
    where = text or host
    if not host:
        raise InvalidOrigin(f"{where!r}: the host is empty")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidOrigin(f"{where!r}: unterminated IPv6 address")
        # ipaddress accepts a "%zone" suffix; the URL standard's IPv6 parser does not.
        if "%" in host:
            raise InvalidOrigin(f"{where!r}: an IPv6 host has no zone identifier")
        try:
            addr = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise InvalidOrigin(f"{where!r}: {host} is not an IPv6 address") from exc
        return f"[{_serialize_ipv6(addr)}]"
    if not host.isascii():
        host = encode_host(host)
    host = host.lower()
    if host.endswith(".") and len(host) > 1:
        # A trailing dot names the same host, but browsers keep it in the origin.
        pass
    if _FORBIDDEN_HOST.search(host):
        raise InvalidOrigin(f"{where!r}: the host contains a character a domain cannot have")
    ipv4 = _parse_ipv4(host)
    if ipv4 is not None:
        return ipv4
    if any(len(label) > 63 for label in host.rstrip(".").split(".")) or len(host) > 253:
        raise InvalidOrigin(f"{where!r}: the host is too long for DNS")
    if ".." in host or host.startswith("."):
        raise InvalidOrigin(f"{where!r}: the host has an empty label")
    return host


def _serialize_ipv6(addr: ipaddress.IPv6Address) -> str:
    """URL standard, IPv6 serializer: hex pieces, the first longest run of 2+ zeros as ``::``.

    Done by hand because ``ipaddress`` writes IPv4-mapped addresses as
    ``::ffff:1.2.3.4`` from Python 3.13 on, where browsers write ``::ffff:102:304``.
    """
    pieces = [int.from_bytes(addr.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len = -1, 1
    run_start, run_len = -1, 0
    for i, piece in enumerate(pieces):
        if piece == 0:
            if run_len == 0:
                run_start = i
            run_len += 1
            if run_len > best_len:
                best_start, best_len = run_start, run_len
        else:
            run_len = 0
    text = [format(p, "x") for p in pieces]
    if best_start < 0:
        return ":".join(text)
    head = ":".join(text[:best_start])
    tail = ":".join(text[best_start + best_len :])
    return f"{head}::{tail}"


def _parse_ipv4(host: str) -> str | None:
    """URL standard IPv4 parser: '0x7f.1' is 127.0.0.1. None when not an IPv4 host."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    last = parts[-1] if parts else ""
    if not last or not (last.isdigit() or re.fullmatch(r"0[xX][0-9a-fA-F]*", last)):
        return None
    if len(parts) > 4:
        raise InvalidOrigin(f"{host!r}: an IPv4 address has at most four parts")
    numbers = []
    for part in parts:
        if part == "":
            raise InvalidOrigin(f"{host!r}: an IPv4 address has an empty part")
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError as exc:
            raise InvalidOrigin(f"{host!r}: {part!r} is not an IPv4 number") from exc
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidOrigin(f"{host!r}: IPv4 address out of range")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(value))


def is_ip_host(host: str) -> bool:
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def host_key(url: str) -> str:
    """``scheme://host:port`` of an absolute URL: the unit per-host politeness and locks apply to.

    The scheme and host lowercased, an IPv6 host in brackets in the URL
    standard's form (``[::1]``), the port always explicit (the scheme's
    default when the URL has none, 0 for a scheme without one). The prober's
    politeness slots and the work items' cross-worker host locks both key on
    this, so one host is one key everywhere. ``ValueError`` for a URL without
    a host or with an invalid port (the prober turns that into a probe error).
    """
    parts = urlsplit(url)
    host = parts.hostname  # lowercased, brackets removed
    if not host:
        raise ValueError(f"no host in URL {masked_url(url)!r}")
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        try:
            host = canonical_host(f"[{host}]")
        except InvalidOrigin:
            host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
