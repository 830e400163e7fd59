"""Egress control against a real HTTP server on 127.0.0.1: with `allow_private: false` no
spelling of a private address, no DNS name resolving to one and no redirect reaches it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from app_server import Answer, AppServer

from rollout_yaml.http.client import AppClients
from rollout_yaml.http.egress import (
    EgressDenied,
    GuardedResolver,
    check_address,
    check_url,
    guarded_socket,
    parse_ip,
    refusal,
)
from rollout_yaml.http.errors import ConnectFailed, EgressRefused, SendError, SendTimeout
from rollout_yaml.http.request import PreparedRequest, join_url


class MappedResolver(AbstractResolver):
    """DNS for the tests: chosen names answer chosen addresses (a hostile DNS server), any
    other name goes to the system resolver (e.g. `localhost`)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.names:
            return await ThreadedResolver().resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


DNS = {
    "rebind.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "private-pair.test": ["10.1.2.3", "192.168.0.9"],
    "aws6.test": ["fd00:ec2::254"],
    "public.test": ["93.184.215.14"],
    "mixed.test": ["127.0.0.1", "93.184.215.14"],
}


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded_app() -> Iterator[AppServer]:
    """One server for the whole hostile table: it must never see a request."""
    server = AppServer().start()
    yield server
    server.stop()


def _request(url: str) -> PreparedRequest:
    return PreparedRequest(
        method="GET", url=url, path="", query=[], headers={"X-Test": "1"}, timeout=3.0
    )


async def _send(clients: AppClients, url: str) -> Any:
    try:
        return await clients.send("app", _request(url), 100_000)
    finally:
        await clients.close()


def _clients(allow_private: bool) -> AppClients:
    return AppClients(allow_private=lambda: allow_private, resolver=MappedResolver(DNS))


# Every URL names the test server's own port where it could reach it, so a leak would show up
# in the server's request count, not only as a connection error.
HOSTILE_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://rebind.test:{port}/",  # a DNS name answering 127.0.0.1
    "http://2130706433:{port}/",  # decimal
    "http://0x7f000001:{port}/",  # hex
    "http://0177.0.0.1:{port}/",  # octal
    "http://017700000001:{port}/",  # octal, one number
    "http://127.1:{port}/",  # short form
    "http://127.0.0.1.:{port}/",  # trailing dot
    "http://0.0.0.0:{port}/",  # unspecified: Linux connects it to the local host
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]:{port}/",  # 6to4 of 127.0.0.1
    "http://user:pw@127.0.0.1:{port}/",  # userinfo before the host
    "http://api.example.com@127.0.0.1:{port}/",  # a trusted-looking name as userinfo
    "http://169.254.169.254/latest/meta-data/",  # AWS / GCP / Azure metadata
    "http://metadata.test/computeMetadata/v1/",
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://aws6.test/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata (CGNAT range)
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/admin",
    "http://private-pair.test/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
]


@pytest.mark.parametrize("template", HOSTILE_URLS)
def test_hostile_urls_are_refused_and_nothing_reaches_the_server(
    template: str, guarded_app: AppServer
) -> None:
    app = guarded_app
    url = template.format(port=app.url.rsplit(":", 1)[1])
    with pytest.raises(SendError) as refused:
        asyncio.run(_send(_clients(allow_private=False), url))
    assert isinstance(refused.value, EgressRefused), refused.value
    assert "egress refused" in str(refused.value)
    assert "allow_private is false" in str(refused.value)
    assert app.requests == []


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://rebind.test:{port}/",
        "http://0x7f000001:{port}/",
        "http://user:pw@127.0.0.1:{port}/",
    ],
)
def test_with_allow_private_the_same_urls_reach_the_server(template: str, app: AppServer) -> None:
    url = template.format(port=app.url.rsplit(":", 1)[1])
    answer = asyncio.run(_send(_clients(allow_private=True), url))
    assert answer.status == 200
    assert len(app.requests) == 1


def test_a_name_with_a_private_and_a_public_address_connects_only_to_the_public_one(
    app: AppServer,
) -> None:
    url = f"http://mixed.test:{app.url.rsplit(':', 1)[1]}/"  # 127.0.0.1 first, then public
    with pytest.raises(SendError) as failed:  # the public one is not listening (or reachable)
        asyncio.run(_send(_clients(allow_private=False), url))
    assert isinstance(failed.value, ConnectFailed | SendTimeout)
    assert "127.0.0.1" not in str(failed.value)
    assert app.requests == []


def test_a_pool_made_while_private_was_allowed_is_not_reused_once_it_is_not(
    app: AppServer,
) -> None:
    """A reload to `allow_private: false` applies at once: neither an open keep-alive connection
    nor the DNS cache of the old pool carries a request through."""
    allowed = [True]
    clients = AppClients(allow_private=lambda: allowed[0], resolver=MappedResolver(DNS))
    url = f"http://rebind.test:{app.url.rsplit(':', 1)[1]}/"

    async def scenario() -> None:
        try:
            assert (await clients.send("app", _request(url), 1000)).status == 200
            allowed[0] = False
            with pytest.raises(SendError) as refused:
                await clients.send("app", _request(url), 1000)
            assert isinstance(refused.value, EgressRefused)
        finally:
            await clients.close()

    asyncio.run(scenario())
    assert len(app.requests) == 1


def test_a_redirect_to_the_metadata_address_is_not_followed_and_check_url_refuses_it(
    app: AppServer,
) -> None:
    target = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    app.answer(Answer(302, {}, {"Location": target}))
    answer = asyncio.run(_send(_clients(allow_private=True), f"{app.url}/moved"))
    assert answer.status == 302
    assert len(app.requests) == 1
    with pytest.raises(EgressDenied):
        asyncio.run(check_url(answer.headers["location"], allow_private=False))


def test_every_answer_of_the_resolver_is_checked_not_only_the_first() -> None:
    async def scenario() -> None:
        guarded = GuardedResolver(lambda: False, MappedResolver(DNS))
        kept = await guarded.resolve("mixed.test", 443)
        assert [r["host"] for r in kept] == ["93.184.215.14"]
        assert [r["host"] for r in await guarded.resolve("public.test", 443)] == ["93.184.215.14"]
        with pytest.raises(EgressDenied) as refused:
            await guarded.resolve("private-pair.test", 443)
        assert "10.1.2.3" in str(refused.value) and "private" in str(refused.value)
        open_door = GuardedResolver(lambda: True, MappedResolver(DNS))
        assert len(await open_door.resolve("private-pair.test", 443)) == 2

    asyncio.run(scenario())


def test_the_socket_factory_refuses_the_address_about_to_be_connected_to() -> None:
    factory = guarded_socket(lambda: False)
    with pytest.raises(EgressDenied):
        factory((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 80)))
    with pytest.raises(EgressDenied):
        factory((socket.AF_INET6, socket.SOCK_STREAM, 0, "", ("fe80::1%1", 80, 0, 1)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("93.184.215.14", 80)))
    sock.close()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("cafe.be", None),
        ("1.2.3.example", None),
    ],
)
def test_ip_spellings_are_read_the_way_a_resolver_reads_them(host: str, address: str) -> None:
    parsed = parse_ip(host)
    assert (None if parsed is None else str(parsed)) == address


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(parse_ip(address)) is None  # type: ignore[arg-type]
    check_address(address)


def test_public_urls_pass_check_url() -> None:
    async def scenario() -> None:
        await check_url("https://93.184.215.14/v1/x", allow_private=False)
        await check_url("https://api.example.com/v1", allow_private=False, resolve=False)
        await check_url("http://127.0.0.1/", allow_private=True)
        for url in ("http://[::1]/", "http://0x7f000001/", "file:///etc/passwd", "http:///x"):
            with pytest.raises(EgressDenied):
                await check_url(url, allow_private=False)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "path", ["/%2F%2Fevil.com", "%2f%2f169.254.169.254", "/x%40127.0.0.2", "/%5C%5Cevil.com"]
)
def test_an_encoded_host_in_a_path_arrives_as_a_path_of_the_base_host(
    path: str, app: AppServer
) -> None:
    url = join_url(f"{app.url}/v1", path)
    assert asyncio.run(_send(_clients(allow_private=True), url)).status == 200
    assert app.requests[0].path == "/v1/" + path.lstrip("/")


def test_a_public_app_is_still_built_and_resolved_under_the_strict_policy() -> None:
    url = join_url("https://public.test/v1", "/orders/42")
    assert url == "https://public.test/v1/orders/42"

    async def scenario() -> list[str]:
        guarded = GuardedResolver(lambda: False, MappedResolver(DNS))
        await check_url(url, allow_private=False, resolve=False)
        return [r["host"] for r in await guarded.resolve("public.test", 443)]

    assert asyncio.run(scenario()) == ["93.184.215.14"]
