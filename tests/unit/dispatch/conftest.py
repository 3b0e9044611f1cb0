"""Fixtures of the delivery-core tests: local settings, a recording HTTP server, secrets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.dispatch.http import WebhookSender
from app.dispatch.secrets import SecretResolver
from app.dispatch_settings import DispatchSettings
from tests.unit.dispatch.fakes import Received, Receiver


@pytest.fixture
def local_settings() -> DispatchSettings:
    """Settings that admit plain http to 127.0.0.1 only, with a short timeout."""
    return DispatchSettings(
        allow_http=True,
        allowed_networks=("127.0.0.1/32",),
        timeout_seconds=1.0,
        response_body_limit_bytes=64,
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """Start the recording server; default response 200 'ok'."""
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        rec = holder[0]
        body = await request.read()
        rec.requests.append(Received(request.method, request.path_qs, dict(request.headers), body))
        if rec.handler is not None:
            return await rec.handler(request)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Receiver(server))
    try:
        yield holder[0]
    finally:
        await server.close()
        await asyncio.sleep(0)


@pytest.fixture
async def sender(local_settings: DispatchSettings) -> AsyncIterator[WebhookSender]:
    """A started sender with the local settings."""
    async with WebhookSender(local_settings) as s:
        yield s


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A secrets folder like a Kubernetes mount."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    return folder


@pytest.fixture
def resolver(secrets_dir: Path) -> SecretResolver:
    """A resolver over the temporary folder and a fixed environment mapping."""
    return SecretResolver(
        secrets_dir=secrets_dir,
        environ={"HOOKSTREAM_SECRET_ENV_ONLY": "from-env"},
    )
