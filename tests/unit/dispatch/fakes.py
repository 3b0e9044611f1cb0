"""Test doubles shared by the delivery-core tests."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses (a DNS server under test control)."""

    def __init__(self, *addrs: str) -> None:
        self.addrs = list(addrs)
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Return the configured addresses for any host."""
        self.calls += 1
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addrs
        ]

    async def close(self) -> None:
        """Nothing to release."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    """One request as the test server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A recording server on 127.0.0.1; `handler` decides each response."""

    server: TestServer
    requests: list[Received] = field(default_factory=list)
    handler: Handler | None = None

    def url(self, path: str = "/hook") -> str:
        """Absolute http URL of a path on this server."""
        return str(self.server.make_url(path))
