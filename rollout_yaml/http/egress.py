"""Egress control: with `runtime.egress.allow_private: false` no request may reach an address
that is not on the public internet (loopback, private, link-local and cloud metadata, CGNAT,
multicast, reserved), however the host is spelled.

The check is applied to the addresses a connection is actually opened to, not to a separate
lookup: `GuardedResolver` drops refused addresses from what DNS answers (so a name that
resolves, or is rebound, to 127.0.0.1 gets nowhere), and `guarded_socket` refuses to create the
socket for a refused address (so an IP literal, a cached answer or any other path is caught at
the last step). `check_url` / `check_address` are the same rules for code that sends through
something other than `AppClients` (e.g. following a URL an App handed back).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks refused when private egress is not allowed, each with the reason shown in the error.
# Written out (rather than `not ip.is_global`) so the list does not change with the Python
# version and each refusal can say why.
_REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified / this network"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared address space (CGNAT; includes Alibaba Cloud metadata)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (includes cloud metadata 169.254.169.254)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (includes broadcast)"),
    )
)
_REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments (includes Teredo)"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private; includes AWS metadata fd00:ec2::254)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class EgressDenied(OSError):
    """A connection to `address` was refused by the egress policy.

    An `OSError` so that aiohttp and aiohappyeyeballs treat it as a failed connection attempt
    (and try the next address, if any) rather than as a crash.
    """

    def __init__(self, host: str, address: str, reason: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(
            f"egress refused: {shown} is {reason}; runtime.egress.allow_private is false"
        )
        self.host = host
        self.address = address
        self.reason = reason


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be reached without `allow_private`, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            why = refusal(embedded)
            return None if why is None else f"{why}, as IPv4 inside IPv6"
        for net6, why in _REFUSED_V6:
            if ip in net6:
                return why
    else:
        for net4, why in _REFUSED_V4:
            if ip in net4:
                return why
    # Anything else the standard library does not consider globally reachable.
    if not ip.is_global or ip.is_multicast:
        return "not a globally reachable address"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver would accept:
    `127.0.0.1`, `[::1]`, `::ffff:127.0.0.1`, and the legacy IPv4 forms `2130706433`,
    `0x7f000001`, `0177.0.0.1`, `127.1`. None for a DNS name."""
    text = host.strip("[]")
    scope = text.find("%")
    if scope != -1 and ":" in text:
        text = text[:scope]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not text or not all(c.isalnum() or c == "." for c in text):
        return None
    try:  # inet_aton takes decimal, octal and hex parts, as getaddrinfo does
        return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
    except OSError:
        return None


def check_address(address: str, host: str | None = None) -> None:
    """Raise `EgressDenied` if `address` (an IP in any spelling) may not be reached."""
    ip = parse_ip(address)
    if ip is None:
        raise EgressDenied(host or address, address, "not an IP address")
    why = refusal(ip)
    if why is not None:
        raise EgressDenied(host or address, str(ip), why)


async def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """Raise `EgressDenied` if a request to `url` would be refused.

    For code that sends through something other than `AppClients` (which checks every address
    it connects to): a redirect target or a `next` URL before following it. With `resolve` a DNS
    name is looked up and every address it resolves to must be allowed; this separate lookup
    cannot see a later rebinding, so prefer sending through `AppClients`.
    """
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise EgressDenied(url, url, "not an absolute http(s) URL")
    if parse_ip(host) is not None:
        check_address(host)
        return
    if not resolve:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, parts.port or 0, type=socket.SOCK_STREAM)
    except OSError:
        return  # does not resolve: the send fails as a connection error, nothing leaks
    for info in infos:
        check_address(str(info[4][0]), host)


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (aiohttp's default) and keeps only allowed addresses.

    A name with some refused and some allowed addresses connects only to the allowed ones; a
    name with nothing left is refused with `EgressDenied` naming the first address it had.
    """

    def __init__(
        self, allow_private: Callable[[], bool], inner: AbstractResolver | None = None
    ) -> None:
        self._allow_private = allow_private
        self._owns_inner = inner is None
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private():
            return found
        kept: list[ResolveResult] = []
        first: EgressDenied | None = None
        for result in found:
            try:
                check_address(result["host"], host)
            except EgressDenied as denied:
                first = first or denied
            else:
                kept.append(result)
        if not kept and first is not None:
            raise first
        return kept

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def guarded_socket(allow_private: Callable[[], bool]) -> Callable[[Any], socket.socket]:
    """A socket factory for aiohttp's `TCPConnector`: the last check, on the exact address
    about to be connected to (IP literals never go through the resolver)."""

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not allow_private():
            check_address(str(sockaddr[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def denial_in(exc: BaseException) -> EgressDenied | None:
    """The `EgressDenied` behind an aiohttp connection error, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressDenied):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, EgressDenied):
            return os_error
        current = current.__cause__ or current.__context__
    return None
