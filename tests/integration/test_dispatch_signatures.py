"""Signed webhooks checked by a receiver with its own HMAC code (not Hookstream's)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.integration.dispatch_support import (
    Receiver,
    dispatcher,
    make_job,
    produce_jobs,
)
from tests.support import dispatch_test_settings, read_back

NEW_KEY = os.urandom(24)
OLD_KEY = os.urandom(24)
# Rotation: the secret source holds the new secret and the old one, newest first.
SECRET_VALUE = " ".join(f"whsec_{base64.b64encode(k).decode()}" for k in (NEW_KEY, OLD_KEY))
TOKEN = "tok-" + base64.urlsafe_b64encode(os.urandom(12)).decode()


def standard_signature_ok(key: bytes, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks check written from the spec: HMAC-SHA256 over id.timestamp.body."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, "sha256")
    expected = base64.b64encode(mac.digest())
    offered = [
        s.split(",", 1)[1].encode()
        for s in headers["webhook-signature"].split(" ")
        if s.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, sig) for sig in offered)


def wandb_signature_ok(secret_text: str, headers: dict[str, str], body: bytes) -> bool:
    """W&B receivers: base64 HMAC-SHA256 of the body keyed by the secret's text."""
    mac = hashlib.sha256
    expected = base64.b64encode(hmac.new(secret_text.encode(), body, mac).digest()).decode()
    return hmac.compare_digest(expected, headers.get("X-Wandb-Signature", ""))


def library_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The `standardwebhooks` reference library's verdict (here on the older, rotated secret)."""
    try:
        Webhook(secret.rstrip("=")).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@dataclass
class SignedReceiver(Receiver):
    """A Receiver that also keeps, per request, which of the independent checks passed."""

    checks: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[SignedReceiver]:
    """A receiver that answers 200 only to authentic, authorised requests (else 401)."""
    rec = SignedReceiver()
    checks = rec.checks

    async def verify(request: web.Request, count: int) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()}
        lowered = {k.lower(): v for k, v in headers.items()}
        result = {
            "new": standard_signature_ok(NEW_KEY, lowered, body),
            "old": standard_signature_ok(OLD_KEY, lowered, body),
            "tampered": standard_signature_ok(NEW_KEY, lowered, body + b" "),
            "wandb": wandb_signature_ok(SECRET_VALUE.split()[0], headers, body),
            "library": library_verifies(SECRET_VALUE.split()[1], headers, body),
            "bearer": headers.get("Authorization") == f"Bearer {TOKEN}",
        }
        checks.append(result)
        ok = result["new"] and result["wandb"] and result["bearer"]
        return web.Response(status=200 if ok else 401)

    rec.handlers["/signed"] = verify
    await rec.start()
    try:
        yield rec
    finally:
        await rec.close()


async def test_signatures_verified_by_independent_code(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: SignedReceiver
) -> None:
    """Both rotation signatures (also by `standardwebhooks`), X-Wandb-Signature and the token."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "HOOK_SECRET").write_text(SECRET_VALUE + "\n")
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path, secrets_dir=str(secrets))
    job = make_job(receiver.url("/signed"), secret="HOOK_SECRET", access_token="HOOK_TOKEN")
    env = {"HOOKSTREAM_SECRET_HOOK_TOKEN": TOKEN}
    async with dispatcher(settings, environ=env):
        results = await read_back(settings, settings.action_results_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            values = await results.until(lambda v: any(r["final"] for r in v))
        finally:
            await results.aclose()
    checks = receiver.checks
    assert checks == [
        {
            "new": True,
            "old": True,
            "tampered": False,
            "wandb": True,
            "library": True,
            "bearer": True,
        }
    ]
    assert values[-1]["status"] == "FINISHED"
    assert len(receiver.hits[0].headers["webhook-signature"].split(" ")) == 2
    assert TOKEN not in str(values)
    assert SECRET_VALUE.split()[0] not in str(values)


async def test_missing_secret_fails_without_request(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A job naming a secret the dispatcher does not have fails with that reason, unsent."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/signed"), secret="NOT_CONFIGURED")
    async with dispatcher(settings, environ={}):
        dlq = await read_back(settings, settings.actions_dlq_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            letters = await dlq.until(lambda v: len(v) == 1)
        finally:
            await dlq.aclose()
    assert receiver.hits == []
    assert letters[0]["attempts"][0]["error_kind"] == "secret"
    assert "secret 'NOT_CONFIGURED' is not configured" in letters[0]["reason"]
