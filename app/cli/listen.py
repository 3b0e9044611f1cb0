"""`hookstream listen`: a local webhook receiver, like `stripe listen`.

Every POST (any path) is a delivery: its Standard Webhooks and `X-Wandb-Signature`
signatures are checked with the configured secrets (app/dispatch/signing.py), one
report is printed (webhook id, automation, verdict, payload), and the receiver answers
`--status` (default 200; e.g. 503 to watch the dispatcher retry). A delivery whose
signature is present but wrong gets 401, as a real receiver would answer; an unsigned
one (a Slack notification, an automation without `secret`) is shown as unsigned and
accepted unless `--require-signature`. `--forward-to URL` passes each delivery on, body
and headers unchanged, and answers with the status the target answered. `--save DIR`
keeps each delivery's raw body and headers, which `hookstream verify-signature` reads.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from app import serialization
from app.contract.timestamps import iso_z
from app.dispatch.http import AUTOMATION_ID_HEADER
from app.dispatch.signing import WEBHOOK_ID_HEADER, check_signatures

__all__ = ["Delivery", "Listener", "serve"]

# Hop-by-hop and framing headers are the forwarding client's own business.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the receiver saw of one request and how it answered."""

    received_at: datetime
    method: str
    path: str
    webhook_id: str | None
    automation_id: str | None
    signatures: Mapping[str, str]
    status: int
    payload: Any
    forwarded: str | None = None
    saved: str | None = None

    @property
    def verdict(self) -> str:
        """`verified`, `INVALID` (a signature failed), `unverified` (no secret) or `unsigned`."""
        if not self.signatures:
            return "unsigned"
        if any(v.startswith("invalid") for v in self.signatures.values()):
            return "INVALID"
        if all(v == "verified" for v in self.signatures.values()):
            return "verified"
        return "unverified"

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON object (`--json`)."""
        return {
            "received_at": iso_z(self.received_at),
            "method": self.method,
            "path": self.path,
            "webhook_id": self.webhook_id,
            "automation_id": self.automation_id,
            "verified": self.verdict == "verified",
            "signatures": dict(self.signatures),
            "status": self.status,
            "forwarded": self.forwarded,
            "saved": self.saved,
            "payload": self.payload,
        }

    def as_text(self) -> str:
        """The report for people: one summary line, the signatures, the payload."""
        lines = [
            f"{iso_z(self.received_at)} {self.method} {self.path} -> {self.status} "
            f"{self.verdict}  id={self.webhook_id or '-'}  automation={self.automation_id or '-'}"
        ]
        names = {"standard": "webhook-signature", "wandb": "X-Wandb-Signature"}
        for scheme, verdict in self.signatures.items():
            lines.append(f"  {names[scheme]}: {verdict}")
        if self.forwarded is not None:
            lines.append(f"  forwarded: {self.forwarded}")
        if self.saved is not None:
            lines.append(f"  saved: {self.saved}.body, {self.saved}.headers.json")
        if isinstance(self.payload, str):
            body = self.payload
        else:
            body = serialization.dumps_str(self.payload, indent=True)
        lines.extend("  " + line for line in body.splitlines())
        return "\n".join(lines)


def _payload(body: bytes) -> Any:
    """The body as JSON when it is JSON, else as text."""
    try:
        return serialization.loads(body)
    except serialization.JSONDecodeError:
        return body.decode("utf-8", "replace")


@dataclass
class Listener:
    """The receiver's request handling; `app()` is its aiohttp application."""

    secrets: Sequence[str]
    out: TextIO
    status: int = 200
    forward_to: str | None = None
    require_signature: bool = False
    as_json: bool = False
    save_dir: Path | None = None
    tolerance: float = 300.0
    deliveries: int = field(default=0, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def app(self) -> web.Application:
        """Health on GET /healthz and /readyz; every POST is a delivery."""
        # A webhook body can be as large as a job (aiohttp's default cap is 1 MiB).
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._health)
        app.router.add_post("/{tail:.*}", self._receive)
        app.on_cleanup.append(self._close)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "deliveries": self.deliveries})

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, str]:
        """Pass the delivery on; the target's status, or 502 when it cannot be reached."""
        assert self.forward_to is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        try:
            async with self._session.post(self.forward_to, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status, f"{self.forward_to} -> {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 502, f"{self.forward_to} failed: {type(exc).__name__}: {exc}"

    def _save(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """`<n>.body` (the raw bytes) and `<n>.headers.json`, `verify-signature`'s inputs."""
        if self.save_dir is None:
            return None
        self.save_dir.mkdir(parents=True, exist_ok=True)
        # Numbered after what the folder holds: an earlier run's deliveries are kept.
        stem = self.save_dir / f"{len(list(self.save_dir.glob('*.body'))) + 1:04d}"
        stem.with_suffix(".body").write_bytes(body)
        stem.with_suffix(".headers.json").write_text(serialization.dumps_str(dict(headers)))
        return str(stem)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        signatures = check_signatures(self.secrets, headers, body, self.tolerance)
        if signatures and not self.secrets:
            signatures = {scheme: "not checked (no secret configured)" for scheme in signatures}
        status, forwarded = self.status, None
        invalid = any(v.startswith("invalid") for v in signatures.values())
        if invalid or (self.require_signature and not signatures):
            status = 401
        elif self.forward_to is not None:
            target_status, forwarded = await self._forward(request, body)
            status = target_status if self.status == 200 else self.status
        delivery = Delivery(
            received_at=datetime.now(UTC),
            method=request.method,
            path=request.path_qs,
            webhook_id=request.headers.get(WEBHOOK_ID_HEADER),
            automation_id=request.headers.get(AUTOMATION_ID_HEADER),
            signatures=signatures,
            status=status,
            payload=_payload(body),
            forwarded=forwarded,
            saved=self._save(headers, body),
        )
        self.deliveries += 1
        text = serialization.dumps_str(delivery.as_json()) if self.as_json else delivery.as_text()
        print(text, file=self.out, flush=True)
        return web.json_response({"received": delivery.verdict}, status=status)


async def serve(listener: Listener, host: str, port: int) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(listener.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        checked = f"{len(listener.secrets)} secret(s)" if listener.secrets else "no secret"
        print(
            f"Hookstream listen: receiving at http://{host}:{port}/ (any path), "
            f"verifying with {checked}, answering {listener.status}"
            + (f", forwarding to {listener.forward_to}" if listener.forward_to else ""),
            file=listener.out,
            flush=True,
        )
        await stop.wait()
    finally:
        await runner.cleanup()
