"""The SSRF guard: address categories, allow-lists, URL checks and the guarded resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from app.dispatch.delivery_errors import BlockedAddressError, BlockedTargetError, InvalidJobError
from app.dispatch.netguard import GuardedResolver, NetworkPolicy, address_category, check_url
from app.dispatch_settings import DispatchSettings
from tests.unit.dispatch.fakes import FakeResolver

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


def policy(**kwargs: object) -> NetworkPolicy:
    """A policy from settings keyword arguments."""
    return NetworkPolicy.from_settings(DispatchSettings.model_validate(kwargs))


@pytest.mark.parametrize("addr", REFUSED)
def test_default_policy_refuses(addr: str) -> None:
    """Loopback, private, link-local, metadata, multicast, reserved and wrapped forms: refused."""
    ip = ipaddress.ip_address(addr)
    assert address_category(ip) is not None
    assert not policy().address_allowed(ip)


@pytest.mark.parametrize("addr", PUBLIC)
def test_default_policy_accepts_public(addr: str) -> None:
    """Global unicast addresses are accepted."""
    assert policy().address_allowed(ipaddress.ip_address(addr))


def test_allowed_network_admits_private_address() -> None:
    """An allow-listed CIDR admits its addresses and nothing else."""
    p = policy(allowed_networks=["10.1.0.0/16"])
    assert p.address_allowed(ipaddress.ip_address("10.1.2.3"))
    assert not p.address_allowed(ipaddress.ip_address("10.2.0.1"))


def test_allowed_network_matches_mapped_ipv6() -> None:
    """An IPv4 allow-list also covers the IPv4-mapped IPv6 form of its addresses."""
    p = policy(allowed_networks=["127.0.0.1/32"])
    assert p.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))


def test_allow_private_keeps_metadata_refused() -> None:
    """allow_private_networks admits RFC 1918 and loopback but not metadata/link-local."""
    p = policy(allow_private_networks=True)
    assert p.address_allowed(ipaddress.ip_address("10.0.0.1"))
    assert p.address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert not p.address_allowed(ipaddress.ip_address("169.254.169.254"))
    assert not p.address_allowed(ipaddress.ip_address("100.100.100.200"))


def test_metadata_admitted_only_when_listed() -> None:
    """Even a metadata address can be allow-listed explicitly (operator's choice)."""
    p = policy(allowed_networks=["169.254.169.254/32"])
    assert p.address_allowed(ipaddress.ip_address("169.254.169.254"))


def test_check_url_requires_https() -> None:
    """http:// is refused unless allow_http."""
    with pytest.raises(BlockedTargetError, match="https only"):
        check_url("http://example.com/x", policy())
    assert check_url("http://example.com/x", policy(allow_http=True)).host == "example.com"


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/", "https://10.0.0.1:8443/x", "https://[::1]/", "https://169.254.169.254/"],
)
def test_check_url_refuses_ip_literals(url: str) -> None:
    """IP-literal hosts are checked up front (aiohttp does not resolve them)."""
    with pytest.raises(BlockedTargetError, match="refused by network policy"):
        check_url(url, policy())


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/x", "https:///x", ""])
def test_check_url_refuses_non_http_urls(url: str) -> None:
    """Only absolute http(s) URLs with a host are jobs at all."""
    with pytest.raises(InvalidJobError):
        check_url(url, policy())


def test_check_url_refuses_credentials() -> None:
    """user:password@ in a URL would be a secret in the job."""
    with pytest.raises(InvalidJobError, match="credentials"):
        check_url("https://user:pw@example.com/", policy())


def test_socket_factory_refuses_unvetted_address() -> None:
    """The last layer refuses a socket to a private address."""
    p = policy()
    info = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443))
    with pytest.raises(BlockedAddressError):
        p.socket_factory(info)


def test_socket_factory_creates_socket_for_allowed_address() -> None:
    """An admitted address gets a real socket of the requested family."""
    p = policy(allowed_networks=["127.0.0.1/32"])
    sock = p.socket_factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    try:
        assert sock.family == socket.AF_INET
    finally:
        sock.close()


async def test_resolver_refuses_name_resolving_to_private() -> None:
    """A public-looking name that resolves to 127.0.0.1 is refused."""
    guarded = GuardedResolver(policy(), FakeResolver("127.0.0.1"))
    with pytest.raises(BlockedAddressError, match="loopback"):
        await guarded.resolve("evil.example", 443)


async def test_resolver_drops_refused_addresses() -> None:
    """Mixed answers keep only the admitted addresses."""
    guarded = GuardedResolver(policy(), FakeResolver("10.0.0.1", "93.184.216.34"))
    results = await guarded.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]


async def test_resolver_checks_every_resolution() -> None:
    """DNS rebinding: a second answer pointing inside is refused although the first was public."""
    fake = FakeResolver("93.184.216.34")
    guarded = GuardedResolver(policy(), fake)
    assert await guarded.resolve("rebind.example", 443)
    fake.addrs = ["169.254.169.254"]
    with pytest.raises(BlockedAddressError):
        await guarded.resolve("rebind.example", 443)
    assert fake.calls == 2


async def test_resolver_trusts_allow_listed_host() -> None:
    """An allow-listed host name may resolve to a private address, which is then vetted."""
    p = policy(allowed_hosts=["*.corp.internal"])
    guarded = GuardedResolver(p, FakeResolver("10.9.9.9"))
    results = await guarded.resolve("ci.corp.internal", 443)
    assert [r["host"] for r in results] == ["10.9.9.9"]
    sock = p.socket_factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", 443)))
    sock.close()


def test_loopback_is_refused_by_default_and_admitted_in_development() -> None:
    """`allow_loopback` (off by default) admits loopback, and only loopback."""
    assert DispatchSettings().allow_loopback is False
    with pytest.raises(BlockedTargetError, match="https only"):
        check_url("http://127.0.0.1:6069/hooks", policy())
    dev = policy(allow_loopback=True)
    for url in ("http://127.0.0.1:6069/hooks", "http://localhost:6069/x", "http://[::1]:6069/"):
        assert check_url(url, dev).port == 6069
    assert dev.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    for addr in ("10.0.0.5", "169.254.169.254", "192.168.1.1"):
        assert not dev.address_allowed(ipaddress.ip_address(addr))
    with pytest.raises(BlockedTargetError, match="https only"):
        check_url("http://example.com/x", dev)


async def test_development_localhost_resolves_to_loopback_only() -> None:
    """In development `localhost` over http may not be steered to another machine."""
    dev = policy(allow_loopback=True)
    guarded = GuardedResolver(dev, FakeResolver("93.184.216.34", "127.0.0.1"))
    results = await guarded.resolve("localhost", 6069)
    assert [r["host"] for r in results] == ["127.0.0.1"]
    only_public = GuardedResolver(dev, FakeResolver("93.184.216.34"))
    with pytest.raises(BlockedAddressError, match="not loopback"):
        await only_public.resolve("localhost", 6069)
