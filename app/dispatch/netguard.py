"""SSRF guard: which URLs and which addresses a dispatcher may connect to."""

# Three layers, so the check applies to the address actually connected to:
#
# 1. `check_url`: scheme (https unless `allow_http`), no credentials in the URL, and
#    an IP-literal host checked at once (aiohttp does not send IP literals to the resolver).
# 2. `GuardedResolver`: resolves a host name, drops refused addresses, and fails if none
#    is left; aiohttp connects only to the addresses the resolver returns, so a DNS answer
#    that changes between a check and the connect (rebinding) cannot slip through.
# 3. `NetworkPolicy.socket_factory`: the connector's socket factory refuses any socket to
#    an address the policy (or the resolver, for an allow-listed host) has not vetted.
#
# Refused unless allow-listed: loopback, private (RFC 1918, ULA, CGNAT), link-local,
# multicast, reserved, unspecified, and cloud metadata addresses; IPv4 embedded in IPv6
# (mapped, 6to4, NAT64) is checked as IPv4. `allow_private_networks` admits private and
# loopback ranges only: link-local and metadata addresses still need `allowed_networks`.
# `allow_loopback` (development) admits loopback addresses, and http:// to a loopback
# host; `localhost` then resolves to loopback addresses only, so that http stays local.
# Proxies from the environment are never used (the session sets trust_env=False).

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from app.dispatch.delivery_errors import BlockedAddressError, BlockedTargetError, InvalidJobError
from app.dispatch_settings import DispatchSettings

__all__ = [
    "METADATA_ADDRESSES",
    "GuardedResolver",
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "address_category",
    "check_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata services (AWS, GCP, Azure, Oracle, ECS, Alibaba, AWS IPv6).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_PRIVATE_OK = frozenset({"private", "loopback"})


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address plus any IPv4 address carried inside an IPv6 one."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _category_of(ip: IPAddress) -> str | None:
    """Why one address (without unwrapping) is not public, or None if it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None  # judged by the embedded IPv4 address
    if ip.is_private:
        return "reserved" if ip.is_reserved else "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def address_category(ip: IPAddress) -> str | None:
    """Why an address is refused by default ("loopback", "private", ...), or None if public."""
    for candidate in _embedded(ip):
        category = _category_of(candidate)
        if category is not None:
            return category
    return None


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a host string (brackets and IPv6 zone allowed), or None."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


class NetworkPolicy:
    """The address rules of one dispatcher, built from DispatchSettings."""

    def __init__(
        self,
        *,
        allow_http: bool = False,
        allow_private_networks: bool = False,
        allowed_networks: Iterable[IPNetwork] = (),
        allowed_hosts: Iterable[str] = (),
        allow_loopback: bool = False,
    ) -> None:
        self.allow_http = allow_http
        self.allow_private_networks = allow_private_networks
        self.allow_loopback = allow_loopback
        self._networks = tuple(allowed_networks)
        hosts = [h.lower().rstrip(".") for h in allowed_hosts]
        self._exact_hosts = frozenset(h for h in hosts if not h.startswith("*."))
        self._suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        # Addresses returned for allow-listed host names, admitted by the socket factory.
        self._vetted: set[IPAddress] = set()

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> NetworkPolicy:
        """The policy the settings describe."""
        return cls(
            allow_http=settings.allow_http,
            allow_private_networks=settings.allow_private_networks,
            allowed_networks=settings.allowed_networks,
            allowed_hosts=settings.allowed_hosts,
            allow_loopback=settings.allow_loopback,
        )

    def host_allowed(self, host: str) -> bool:
        """True if `host` is allow-listed by name (exact or `*.suffix`)."""
        name = host.lower().rstrip(".").strip("[]")
        return name in self._exact_hosts or any(name.endswith(s) for s in self._suffixes)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why the policy refuses `ip`, or None if it may be connected to."""
        candidates = _embedded(ip)
        if any(c.version == n.version and c in n for c in candidates for n in self._networks):
            return None
        category = address_category(ip)
        if category is None:
            return None
        if self.allow_private_networks and category in _PRIVATE_OK:
            return None
        if self.allow_loopback and category == "loopback":
            return None
        return f"address {ip} is {category}"

    def http_allowed(self, host: str) -> bool:
        """Whether http:// may be used to `host`: `allow_http`, or a loopback host in dev."""
        if self.allow_http:
            return True
        if not self.allow_loopback:
            return False
        if host.lower().rstrip(".") == "localhost":
            return True
        ip = _parse_ip(host)
        return ip is not None and address_category(ip) == "loopback"

    def address_allowed(self, ip: IPAddress) -> bool:
        """True if the policy admits `ip`."""
        return self.refusal(ip) is None

    def vet(self, ip: IPAddress) -> None:
        """Admit an address that an allow-listed host name resolved to."""
        self._vetted.add(ip)

    def check_address(self, ip: IPAddress) -> None:
        """Raise BlockedAddressError unless `ip` is admitted or vetted."""
        if ip in self._vetted:
            return
        reason = self.refusal(ip)
        if reason is not None:
            raise BlockedAddressError(f"refused by network policy: {reason}")

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """Socket factory for aiohttp's connector: the last check before connect()."""
        family, type_, proto, _canonname, sockaddr = addr_info
        ip = _parse_ip(str(sockaddr[0]))
        if ip is None:
            raise BlockedAddressError(f"refused by network policy: bad address {sockaddr[0]!r}")
        self.check_address(ip)
        return socket.socket(family=family, type=type_, proto=proto)


def check_url(url: str, policy: NetworkPolicy) -> URL:
    """Parse and vet a target URL; raise InvalidJobError or BlockedTargetError."""
    if not isinstance(url, str) or not url:
        raise InvalidJobError("the action has no url")
    try:
        parsed = URL(url)
        host = parsed.host
    except (ValueError, TypeError) as exc:
        raise InvalidJobError("the action url is not a valid URL") from exc
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http") or not host or not parsed.is_absolute():
        raise InvalidJobError("the action url must be an absolute http(s) URL")
    if scheme == "http" and not policy.http_allowed(host):
        raise BlockedTargetError("refused by network policy: http:// is not allowed (https only)")
    if parsed.user is not None or parsed.password is not None:
        raise InvalidJobError("credentials in the url are not allowed; use access_token")
    ip = _parse_ip(host)
    if ip is not None:
        if policy.host_allowed(host):
            policy.vet(ip)  # an allow-listed IP literal never reaches the resolver
        else:
            reason = policy.refusal(ip)
            if reason is not None:
                raise BlockedTargetError(f"refused by network policy: {reason}")
    return parsed


class GuardedResolver(AbstractResolver):
    """Resolves through an inner resolver and returns only addresses the policy admits."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and drop refused addresses; BlockedAddressError if none remain."""
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        trusted = self._policy.host_allowed(host)
        # An http:// URL may name `localhost` in development: it must stay on this machine.
        local_only = self._policy.allow_loopback and host.lower().rstrip(".") == "localhost"
        kept: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            ip = _parse_ip(result["host"])
            if ip is None:
                reasons.append(f"bad address {result['host']!r}")
                continue
            if local_only and address_category(ip) != "loopback":
                reasons.append(f"localhost resolved to {ip}, which is not loopback")
                continue
            if trusted:
                self._policy.vet(ip)
                kept.append(result)
                continue
            reason = self._policy.refusal(ip)
            if reason is None:
                kept.append(result)
            else:
                reasons.append(reason)
        if not kept:
            raise BlockedAddressError(
                f"refused by network policy: {host} resolves to no allowed address "
                f"({'; '.join(reasons) or 'no address'})"
            )
        return kept

    async def close(self) -> None:
        """Close the inner resolver."""
        if self._inner is not None:
            await self._inner.close()
