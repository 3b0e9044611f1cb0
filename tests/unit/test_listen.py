"""`hookstream listen`: verdicts, answers, reports and forwarding, on an in-process server."""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app import serialization
from app.cli.listen import Listener
from app.cli.main import main
from app.dispatch.http import prepare_webhook
from app.dispatch.secrets import SecretResolver
from app.dispatch.signing import main_verify

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
PAYLOAD = '{"model": "acme/wandb-registry-model/mnist-classifier:v3", "alias": "production"}'

Client = TestClient[web.Request, web.Application]
StartClient = Callable[[Listener], Awaitable[Client]]


def signed(secret: str, payload: str = PAYLOAD) -> tuple[bytes, dict[str, str]]:
    """Body and headers exactly as the dispatcher sends them."""
    job = {
        "job_id": "job-42",
        "automation_id": "deploy-on-production",
        "action": {"url": "https://x.example/", "payload": payload, "secret": "S"},
    }
    resolver = SecretResolver(environ={"HOOKSTREAM_SECRET_S": secret})
    request = prepare_webhook(job, resolver, timestamp=int(time.time()))
    return request.body, dict(request.headers)


@pytest.fixture
async def client_for() -> AsyncIterator[StartClient]:
    """Start a test client on a listener's app; all are closed at the end."""
    clients: list[Client] = []

    async def start(listener: Listener) -> Client:
        client = TestClient(TestServer(listener.app()))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def test_verified_delivery_is_reported_and_answered(client_for: StartClient) -> None:
    """A correctly signed delivery: 200, and the report names id, automation and verdict."""
    out = io.StringIO()
    client = await client_for(Listener(secrets=[SECRET], out=out))
    body, headers = signed(SECRET)
    response = await client.post("/hooks/deploy", data=body, headers=headers)
    assert response.status == 200
    report = out.getvalue()
    first = report.splitlines()[0]
    assert "POST /hooks/deploy -> 200 verified" in first
    assert "id=job-42" in first
    assert "automation=deploy-on-production" in first
    assert "webhook-signature: verified" in report
    assert "X-Wandb-Signature: verified" in report
    assert '"alias": "production"' in report


async def test_wrong_secret_gets_401_and_says_why(client_for: StartClient) -> None:
    """A signature that does not match answers 401 (what a real receiver does) and says so."""
    out = io.StringIO()
    client = await client_for(Listener(secrets=[SECRET], out=out, as_json=True))
    body, headers = signed("whsec_" + base64.b64encode(os.urandom(24)).decode())
    response = await client.post("/x", data=body, headers=headers)
    assert response.status == 401
    report = serialization.loads(out.getvalue())
    assert report["verified"] is False
    assert report["signatures"]["standard"] == "invalid: no matching signature"
    assert report["payload"]["alias"] == "production"


async def test_chosen_status_and_unsigned_deliveries(client_for: StartClient) -> None:
    """`--status 503` is answered to signed deliveries; unsigned ones pass unless required."""
    out = io.StringIO()
    client = await client_for(Listener(secrets=[SECRET], out=out, status=503, as_json=True))
    body, headers = signed(SECRET)
    assert (await client.post("/x", data=body, headers=headers)).status == 503
    assert (await client.post("/slack", data=b'{"text": "hi"}')).status == 503
    reports = [serialization.loads(line) for line in out.getvalue().splitlines()]
    assert [r["verified"] for r in reports] == [True, False]
    assert reports[1]["signatures"] == {}
    strict = await client_for(Listener(secrets=[SECRET], out=out, require_signature=True))
    assert (await strict.post("/slack", data=b"{}")).status == 401


async def test_forwarding_passes_body_and_headers_on(client_for: StartClient) -> None:
    """`--forward-to`: the target gets the bytes and signature; its status is answered."""
    seen: list[tuple[bytes, str]] = []

    async def target(request: web.Request) -> web.Response:
        seen.append((await request.read(), request.headers["webhook-signature"]))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/in", target)
    target_client = TestClient(TestServer(app))
    await target_client.start_server()
    try:
        out = io.StringIO()
        url = str(target_client.make_url("/in"))
        client = await client_for(Listener(secrets=[SECRET], out=out, forward_to=url))
        body, headers = signed(SECRET)
        response = await client.post("/x", data=body, headers=headers)
        assert response.status == 202
        assert seen == [(body, headers["webhook-signature"])]
        assert f"forwarded: {url} -> 202" in out.getvalue()
    finally:
        await target_client.close()


def test_listen_refuses_a_missing_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """A secret name nobody configured stops `listen` with the name, before it serves."""
    code = main(["listen", "--secret-name", "NOT_CONFIGURED_ANYWHERE_X1"])
    assert code == 2
    assert "NOT_CONFIGURED_ANYWHERE_X1" in capsys.readouterr().err
    assert main(["listen", "--status", "99"]) == 2


async def test_saved_delivery_verifies_with_verify_signature(
    client_for: StartClient, tmp_path: Path
) -> None:
    """`--save` keeps body and headers; `hookstream verify-signature` accepts them as saved."""
    out = io.StringIO()
    saved = tmp_path / "deliveries"
    client = await client_for(Listener(secrets=[SECRET], out=out, save_dir=saved))
    body, headers = signed(SECRET)
    assert (await client.post("/hooks/deploy", data=body, headers=headers)).status == 200
    assert (saved / "0001.body").read_bytes() == body
    assert (
        out.getvalue().splitlines()[3] == f"  saved: {saved}/0001.body, {saved}/0001.headers.json"
    )
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    args = ["--secret-file", str(secret_file), "--headers-file", str(saved / "0001.headers.json")]
    err = io.StringIO()
    assert main_verify([*args, "--body", str(saved / "0001.body")], stderr=err) == 0
    assert "valid (standard)" in err.getvalue()
    wandb = [*args, "--body", str(saved / "0001.body"), "--scheme", "wandb"]
    assert main_verify(wandb, stderr=err) == 0
    (saved / "0001.body").write_bytes(body + b" ")
    assert main_verify([*args, "--body", str(saved / "0001.body")], stderr=err) == 1
