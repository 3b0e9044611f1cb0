"""WebhookSender against a real aiohttp server on 127.0.0.1 (allow-listed in the settings)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.contract.results import ErrorKind
from app.dispatch.delivery_errors import BlockedAddressError
from app.dispatch.http import USER_AGENT, WebhookSender, prepare_webhook
from app.dispatch.retry import Verdict, classify
from app.dispatch.secrets import SecretResolver
from app.dispatch_settings import DispatchSettings
from tests.unit.dispatch.fakes import FakeResolver, Receiver

BODY = '{"model": "acme/proj/mnist:v3",   "note": "héllo ✓"}'


def job(url: str, **action: Any) -> dict[str, Any]:
    """A webhook job in the contract's shape."""
    return {
        "job_id": "job-abc",
        "automation_id": "deploy",
        "event_id": "ev-1",
        "action_type": "webhook",
        "action": {"url": url, "payload": BODY, **action},
        "event": {},
    }


def std_sig(secret: str, msg_id: str, ts: str, body: bytes) -> str:
    """Independent Standard Webhooks signature (plain-text secret)."""
    mac = hmac.new(secret.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


@pytest.fixture
def secrets(resolver: SecretResolver, secrets_dir: Path) -> SecretResolver:
    """A resolver with a signing secret and an access token."""
    (secrets_dir / "HOOK_SECRET").write_text("s3cret\n")
    (secrets_dir / "HOOK_TOKEN").write_text("tok-123\n")
    return resolver


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_request_headers_and_body(
    receiver: Receiver, local_settings: DispatchSettings, secrets: SecretResolver
) -> None:
    """The server gets the body unchanged, Standard Webhooks + W&B signatures, token, headers."""
    clock = Clock(1_800_000_000.0)
    async with WebhookSender(local_settings, clock=clock) as sender:
        outcome = await sender.send(
            job(
                receiver.url(),
                secret="HOOK_SECRET",
                access_token="HOOK_TOKEN",
                headers={"X-Team": "vision"},
            ),
            secrets,
        )
    assert outcome.status == 200
    assert classify(outcome) is Verdict.SUCCESS
    (req,) = receiver.requests
    body = BODY.encode()
    assert req.method == "POST"
    assert req.body == body
    h = req.headers
    assert h["Content-Type"] == "application/json"
    assert h["webhook-id"] == "job-abc"
    assert h["webhook-timestamp"] == "1800000000"
    assert h["webhook-signature"] == std_sig("s3cret", "job-abc", "1800000000", body)
    expected_wandb = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert h["X-Wandb-Signature"] == expected_wandb
    assert h["Authorization"] == "Bearer tok-123"
    assert h["X-Team"] == "vision"
    assert h["User-Agent"] == USER_AGENT


async def test_unsigned_without_secret(receiver: Receiver, sender: WebhookSender) -> None:
    """Without secret or token there are no signature or Authorization headers."""
    outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.ok
    h = receiver.requests[0].headers
    assert "webhook-signature" not in h
    assert "Authorization" not in h
    assert "X-Wandb-Signature" not in h


async def test_id_stable_and_timestamp_fresh_across_retries(
    receiver: Receiver, local_settings: DispatchSettings, secrets: SecretResolver
) -> None:
    """A retry keeps webhook-id and re-signs with a new timestamp."""
    clock = Clock(1_800_000_000.0)
    async with WebhookSender(local_settings, clock=clock) as sender:
        await sender.send(job(receiver.url(), secret="HOOK_SECRET"), secrets)
        clock.now += 42
        await sender.send(job(receiver.url(), secret="HOOK_SECRET"), secrets)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "job-abc"
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 42
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


async def test_rotated_secret_sends_two_signatures(
    receiver: Receiver, sender: WebhookSender, resolver: SecretResolver, secrets_dir: Path
) -> None:
    """A secret value with two secrets gives two v1 signatures; W&B uses the first."""
    (secrets_dir / "ROT").write_text("new-one old-one")
    await sender.send(job(receiver.url(), secret="ROT"), resolver)
    h = receiver.requests[0].headers
    ts, body = h["webhook-timestamp"], BODY.encode()
    assert h["webhook-signature"].split() == [
        std_sig("new-one", "job-abc", ts, body),
        std_sig("old-one", "job-abc", ts, body),
    ]
    assert (
        h["X-Wandb-Signature"]
        == base64.b64encode(hmac.new(b"new-one", body, hashlib.sha256).digest()).decode()
    )


async def test_object_payload_is_serialised(receiver: Receiver, sender: WebhookSender) -> None:
    """A payload given as an object is sent as compact JSON."""
    j = job(receiver.url())
    j["action"]["payload"] = {"a": [1, 2]}
    await sender.send(j, SecretResolver(environ={}))
    assert receiver.requests[0].body == b'{"a":[1,2]}'


async def test_redirect_is_not_followed(receiver: Receiver, sender: WebhookSender) -> None:
    """A 307 is reported as such and the Location is never requested."""

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(location="/elsewhere")

    receiver.handler = redirect
    outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.status == 307
    assert classify(outcome) is Verdict.FAIL
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_timeout_outcome(receiver: Receiver) -> None:
    """A server slower than timeout_seconds gives a TIMEOUT outcome after about that long."""

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    receiver.handler = slow
    settings = DispatchSettings(
        allow_http=True, allowed_networks=("127.0.0.1/32",), timeout_seconds=0.3
    )
    async with WebhookSender(settings) as sender:
        outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.status is None
    assert outcome.error == "timed out after 0.3s"
    assert 0.25 <= outcome.duration_seconds < 2.0
    assert classify(outcome) is Verdict.RETRY


async def test_slow_body_keeps_status(receiver: Receiver) -> None:
    """A 200 whose body stalls still counts as delivered (the receiver accepted it)."""

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        await resp.write(b"partial")
        await asyncio.sleep(5)
        return resp

    receiver.handler = stall
    settings = DispatchSettings(
        allow_http=True, allowed_networks=("127.0.0.1/32",), timeout_seconds=0.3
    )
    async with WebhookSender(settings) as sender:
        outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.status == 200
    assert classify(outcome) is Verdict.SUCCESS
    assert outcome.error is not None
    assert "reading the response body" in outcome.error


async def test_response_body_truncated(receiver: Receiver, sender: WebhookSender) -> None:
    """A long response body is cut at response_body_limit_bytes and flagged."""

    async def big(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="x" * 5000)

    receiver.handler = big
    outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.status == 500
    assert outcome.error == "HTTP 500 Internal Server Error"
    assert outcome.response_body == "x" * 64
    assert outcome.response_truncated


async def test_short_body_not_flagged(receiver: Receiver, sender: WebhookSender) -> None:
    """A body of exactly the limit is complete, not truncated."""

    async def exact(_: web.Request) -> web.StreamResponse:
        return web.Response(text="y" * 64)

    receiver.handler = exact
    outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.response_body == "y" * 64
    assert not outcome.response_truncated


async def test_retry_after_is_reported(receiver: Receiver, sender: WebhookSender) -> None:
    """A 429's Retry-After header is passed to the retry policy."""

    async def limited(_: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "17"})

    receiver.handler = limited
    outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert (outcome.status, outcome.retry_after) == (429, "17")
    assert classify(outcome) is Verdict.RETRY


async def test_missing_secret_fails_without_request(
    receiver: Receiver, sender: WebhookSender
) -> None:
    """A job naming an unconfigured secret fails with that reason and sends nothing."""
    outcome = await sender.send(job(receiver.url(), secret="NOT_THERE"), SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.SECRET
    assert outcome.error == "secret 'NOT_THERE' is not configured"
    assert receiver.requests == []


async def test_reserved_custom_header_is_refused(receiver: Receiver, sender: WebhookSender) -> None:
    """A custom header cannot override Authorization or the signature headers."""
    for name in ("Authorization", "webhook-signature", "X-WANDB-SIGNATURE", "webhook-id"):
        outcome = await sender.send(
            job(receiver.url(), headers={name: "forged"}), SecretResolver(environ={})
        )
        assert outcome.error_kind is ErrorKind.INVALID_JOB, name
    assert receiver.requests == []


async def test_header_injection_is_refused(sender: WebhookSender, receiver: Receiver) -> None:
    """A header value with CR/LF cannot smuggle another header."""
    outcome = await sender.send(
        job(receiver.url(), headers={"X-A": "v\r\nX-B: w"}), SecretResolver(environ={})
    )
    assert outcome.error_kind is ErrorKind.INVALID_JOB
    assert receiver.requests == []


async def test_connection_refused_is_retryable_and_url_free(
    sender: WebhookSender, closed_port: int
) -> None:
    """Nothing listening gives CONNECTION (retry) and the error text omits the URL path."""
    url = f"http://127.0.0.1:{closed_port}/services/T000/B000/SECRETPATH?token=abc"
    outcome = await sender.send(job(url), SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.CONNECTION
    assert classify(outcome) is Verdict.RETRY
    assert outcome.error is not None
    assert "SECRETPATH" not in outcome.error
    assert "token" not in outcome.error


async def test_loopback_refused_by_default(receiver: Receiver) -> None:
    """Without an allow-list the local server is refused and receives nothing."""
    settings = DispatchSettings(allow_http=True)
    async with WebhookSender(settings) as sender:
        outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.BLOCKED
    assert classify(outcome) is Verdict.FAIL
    assert receiver.requests == []


async def test_https_required_by_default(receiver: Receiver) -> None:
    """Plain http is refused when allow_http is off, even to an allow-listed address."""
    settings = DispatchSettings(allowed_networks=("127.0.0.1/32",))
    async with WebhookSender(settings) as sender:
        outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.BLOCKED
    assert "https only" in (outcome.error or "")
    assert receiver.requests == []


async def test_name_resolving_to_loopback_is_refused(receiver: Receiver) -> None:
    """A host name whose DNS answer is 127.0.0.1 is refused at connect time (rebinding)."""
    settings = DispatchSettings(allow_http=True)
    port = receiver.server.port
    async with WebhookSender(settings, resolver=FakeResolver("127.0.0.1")) as sender:
        outcome = await sender.send(
            job(f"http://innocent.example:{port}/hook"), SecretResolver(environ={})
        )
    assert outcome.error_kind is ErrorKind.BLOCKED
    assert outcome.error is not None
    assert "loopback" in outcome.error
    assert receiver.requests == []


async def test_allow_listed_host_reaches_private_address(receiver: Receiver) -> None:
    """allowed_hosts admits a named internal host that resolves to a private address."""
    settings = DispatchSettings(allow_http=True, allowed_hosts=("ci.corp.test",))
    port = receiver.server.port
    async with WebhookSender(settings, resolver=FakeResolver("127.0.0.1")) as sender:
        outcome = await sender.send(
            job(f"http://ci.corp.test:{port}/hook"), SecretResolver(environ={})
        )
    assert outcome.status == 200
    assert len(receiver.requests) == 1


async def test_allow_listed_ip_literal_host(receiver: Receiver) -> None:
    """An IP literal in allowed_hosts passes both the URL check and the socket factory."""
    settings = DispatchSettings(allow_http=True, allowed_hosts=("127.0.0.1",))
    async with WebhookSender(settings) as sender:
        outcome = await sender.send(job(receiver.url()), SecretResolver(environ={}))
    assert outcome.status == 200


async def test_invalid_whsec_secret_fails(
    receiver: Receiver, sender: WebhookSender, resolver: SecretResolver, secrets_dir: Path
) -> None:
    """A configured whsec_ secret that is not base64 fails the job as a secret problem."""
    (secrets_dir / "BAD").write_text("whsec_***")
    outcome = await sender.send(job(receiver.url(), secret="BAD"), resolver)
    assert outcome.error_kind is ErrorKind.SECRET
    assert receiver.requests == []


def test_prepared_request_repr_hides_url_and_headers(secrets: SecretResolver) -> None:
    """A prepared request's repr shows neither the URL nor the bearer token."""
    request = prepare_webhook(
        job("https://hooks.example/T/SECRETPATH", access_token="HOOK_TOKEN"),
        secrets,
        timestamp=1,
    )
    assert request.headers["Authorization"] == "Bearer tok-123"
    text = repr(request)
    assert "tok-123" not in text
    assert "SECRETPATH" not in text


async def test_connector_socket_factory_refuses_direct_ip(receiver: Receiver) -> None:
    """Even a request that skips check_url cannot open a socket to a refused address."""
    settings = DispatchSettings(allow_http=True)
    async with WebhookSender(settings) as sender:
        session = sender._session
        assert session is not None
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.post(receiver.url(), data=b"{}")
    assert isinstance(info.value.os_error, BlockedAddressError)
    assert receiver.requests == []
