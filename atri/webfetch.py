"""Fetching a web page for a model's tool call, without letting the model reach inside the host's network.

A model can be talked into asking for `http://169.254.169.254/` (a cloud's metadata, with its keys) or a
database port on the host. So: http and https only; the name is resolved here and every address it has
must be public (not private, loopback, link-local, reserved or multicast); the connection goes to the
address that was checked (no second lookup that could answer differently), with the name kept for the
Host header and TLS; redirects are followed by hand, each one checked the same way; the body is read up
to a size limit within one deadline for the whole fetch.

The deadline holds whatever the server does: a read timeout starts again with every byte, so a page that
sends one header line a second would hold a fetch for as long as it likes. A watchdog timer shuts the
connection down when the deadline passes, and the name lookup is waited for no longer than the deadline.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx2

MAX_BYTES = 2_000_000
MAX_TEXT_CHARS = 20_000  # what goes back to the model: a page's text, not its whole markup
TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
USER_AGENT = "Atri/1.0 (fetch tool; +https://github.com/)"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(Exception):
    """Why a page was not fetched, in words the model (and the visitor, in the step) can read."""


# IPv6 ranges whose last 32 bits are an IPv4 address that a translator or the kernel may connect to
_LAST_32_BITS_IPV4 = tuple(ipaddress.IPv6Network(network) for network in (
    "64:ff9b::/96",  # NAT64, well-known prefix (RFC 6052)
    "::/96",  # IPv4-compatible (deprecated; includes :: and ::1)
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
))
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): IPv4 around a zero octet


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: IPv4-mapped, NAT64, 6to4, Teredo (its client), IPv4-compatible
    or -translated. None for a plain IPv6 address."""
    carried = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
    if carried is not None:
        return carried
    bits = int(address)
    if address in _NAT64_LOCAL:  # RFC 6052 for a /48 prefix: bits 48-63 and 72-87
        return ipaddress.IPv4Address(((bits >> 64) & 0xFFFF) << 16 | (bits >> 40) & 0xFFFF)
    if any(address in network for network in _LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(bits & 0xFFFF_FFFF)
    return None


def is_public(address: Address) -> bool:
    """Reachable on the internet: not this machine, its network, a link-local (metadata), site-local or reserved
    range, nor an IPv6 address that leads to such an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
        if address.ipv4_mapped:  # ::ffff:0:0/96 itself is reserved: the IPv4 address is what is reached
            return True
    return address.is_global and not address.is_multicast


def _lookup(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchRefused(f"cannot resolve {host!r}: {error}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _resolve(host: str, port: int, deadline: float) -> list[Address]:
    """The host's addresses, waited for until the deadline (a slow name server's lookup ends by itself)."""
    addresses: Future[list[Address]] = Future()

    def look_up() -> None:
        try:
            addresses.set_result(_lookup(host, port))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting fetch
            addresses.set_exception(error)

    threading.Thread(target=look_up, name="atri-resolve", daemon=True).start()
    try:
        return addresses.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise FetchRefused(f"looking up {host!r} took too long") from None


def checked_address(url: httpx2.URL, allowed: Callable[[Address], bool] = is_public,
                    deadline: float | None = None) -> Address:
    """The address to connect to, once every address of the URL's host passed `allowed`."""
    if url.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be fetched, not {url.scheme or 'this'!r}")
    if not url.host:
        raise FetchRefused("the URL has no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _resolve(url.host, port, time.monotonic() + TIMEOUT_S if deadline is None else deadline)
    refused = [str(address) for address in addresses if not allowed(address)]
    if refused or not addresses:
        raise FetchRefused(f"{url.host} is a private, loopback or link-local address ({', '.join(refused)}): refused")
    return addresses[0]


@dataclass(frozen=True)
class Page:
    url: str  # where it ended up, after redirects
    status: int
    content_type: str
    text: str
    truncated: bool


def fetch_page(url: str, *, allowed: Callable[[Address], bool] = is_public, timeout_s: float = TIMEOUT_S,
               max_bytes: int = MAX_BYTES, max_redirects: int = MAX_REDIRECTS) -> Page:
    """The page at `url` as text (HTML reduced to its readable text). Raises FetchRefused."""
    deadline = time.monotonic() + timeout_s
    try:
        current = httpx2.URL(url.strip())
    except httpx2.InvalidURL as error:
        raise FetchRefused(f"not a valid URL: {error}") from None
    watchdog = _Watchdog(deadline)
    try:
        with httpx2.Client(timeout=httpx2.Timeout(timeout_s), follow_redirects=False, trust_env=False) as client:
            return _follow(client, current, allowed, watchdog, deadline, max_bytes, max_redirects)
    finally:
        watchdog.cancel()


def _follow(client: httpx2.Client, current: httpx2.URL, allowed: Callable[[Address], bool], watchdog: _Watchdog,
            deadline: float, max_bytes: int, max_redirects: int) -> Page:
    """Each hop of the redirects checked, then the page where they end."""
    for _ in range(max_redirects + 1):
        address = checked_address(current, allowed, deadline)
        status, headers, body, truncated = _get(client, current, address, watchdog, deadline, max_bytes)
        location = headers.get("location")
        if 300 <= status < 400 and location:
            try:
                current = httpx2.URL(urljoin(str(current), location))
            except httpx2.InvalidURL as error:
                raise FetchRefused(f"redirected to an invalid URL: {error}") from None
            continue
        content_type = headers.get("content-type", "")
        return Page(str(current), status, content_type, page_text(body, content_type), truncated)
    raise FetchRefused(f"more than {max_redirects} redirects")


class _Watchdog:
    """Shuts the fetch's connection down once the deadline has passed, whatever is being read from it."""

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's `trace` hook: learns each connection's socket as it opens (and again after TLS)."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                if self.fired:
                    self._shut()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._socket is None:
            return
        try:  # the plain socket's shutdown, even under TLS: SSLSocket.shutdown would drop its TLS state mid-read
            socket.socket.shutdown(self._socket, socket.SHUT_RDWR)
        except OSError:  # closed already
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _too_long() -> FetchRefused:
    return FetchRefused("the page took too long to arrive")


def _get(client: httpx2.Client, url: httpx2.URL, address: Address, watchdog: _Watchdog, deadline: float,
         max_bytes: int) -> tuple[int, httpx2.Headers, bytes, bool]:
    """One GET to the checked address, with the URL's name as Host and TLS server name."""
    left_s = deadline - time.monotonic()
    if left_s <= 0:
        raise _too_long()
    host_header = url.netloc.decode("ascii")
    pinned = url.copy_with(host=str(address))
    extensions: dict[str, Any] = {"trace": watchdog.trace}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    request = client.build_request("GET", pinned, headers={"Host": host_header, "User-Agent": USER_AGENT,
                                                           "Accept": "text/html, text/plain;q=0.9, */*;q=0.5"},
                                   timeout=left_s, extensions=extensions)
    body = bytearray()
    truncated = False
    try:
        response = client.send(request, stream=True)
        try:
            for piece in response.iter_bytes():
                body += piece
                if len(body) >= max_bytes:
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise _too_long()
        finally:
            response.close()
    except httpx2.TimeoutException:
        raise _too_long() from None
    except (httpx2.HTTPError, OSError, ValueError) as error:  # the watchdog's shutdown may surface as any of these
        if watchdog.fired:
            raise _too_long() from None
        if not isinstance(error, httpx2.HTTPError):
            raise
        raise FetchRefused(f"could not fetch the page: {type(error).__name__}") from None
    if watchdog.fired:  # a body without a length ends when its connection is shut: it is not the whole page
        raise _too_long()
    return response.status_code, response.headers, bytes(body[:max_bytes]), truncated


class _TextOfHtml(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def page_text(body: bytes, content_type: str) -> str:
    """Readable text of a page: HTML without its markup, scripts and styles; other text as it is."""
    charset = "utf-8"
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";")[0].strip().strip('"') or charset
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
        parser = _TextOfHtml()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
