"""Helpers of the dispatcher integration tests: a recording HTTP receiver, jobs, topic reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app import serialization
from app.core.topics import DispatchKind
from app.dispatch.service import Dispatcher
from app.kafka.clients import producer
from app.settings import Settings
from tests.integration.harness import ROOT, settings_env

__all__ = [
    "DispatcherProcess",
    "Hit",
    "Receiver",
    "dispatch_env",
    "dispatcher",
    "make_job",
    "produce_jobs",
]

Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    """One request the receiver got: its path, headers, body, arrival time and answer."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header ('' when absent)."""
        return self.headers.get("webhook-id", self.headers.get("Webhook-Id", ""))


async def _ok(request: web.Request, count: int) -> web.StreamResponse:
    """The default handler: 200 ok."""
    return web.Response(text="ok")


@dataclass
class Receiver:
    """A real aiohttp server on 127.0.0.1; a path's handler gets (request, n-th POST of its id)."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def for_id(self, webhook_id: str) -> list[Hit]:
        """Every request that carried this webhook-id, in arrival order."""
        return [h for h in self.hits if h.webhook_id == webhook_id]

    def on(self, path: str) -> list[Hit]:
        """Every request to a path."""
        return [h for h in self.hits if h.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Record the hit, then answer with the path's handler."""
        hit = Hit(request.path, dict(request.headers), await request.read(), time.monotonic())
        self.hits.append(hit)
        count = len(self.for_id(hit.webhook_id)) if hit.webhook_id else len(self.on(hit.path))
        handler = self.handlers.get(request.path, _ok)
        try:
            response = await handler(request, count)
        finally:
            self._changed.set()
        hit.status = response.status
        self._changed.set()
        return response

    async def start(self) -> Receiver:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        # The runner's public addresses name the ephemeral port; site._server is private
        # and typed as AbstractServer, which has no sockets.
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 20.0) -> None:
        """Wait until `predicate()` holds, re-checked on every request."""
        deadline = time.monotonic() + seconds
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"receiver condition not met in {seconds}s: {self.hits}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))


def make_job(
    url: str,
    *,
    automation_id: str = "deploy-hook",
    revision: int = 1,
    payload: str | None = None,
    secret: str | None = None,
    access_token: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A webhook action job as the worker writes it (contract "Action jobs")."""
    event_id = event_id or str(uuid.uuid4())
    job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{automation_id}/{revision}"))
    action: dict[str, Any] = {
        "url": url,
        "payload": payload or serialization.dumps_str({"event_id": event_id, "model": "m:v3"}),
        "headers": {},
    }
    if secret:
        action["secret"] = secret
    if access_token:
        action["access_token"] = access_token
    return {
        "job_id": job_id,
        "automation_id": automation_id,
        "automation_name": f"{automation_id} (test)",
        "automation_revision": revision,
        "event_id": event_id,
        "event_type": "ADD_ARTIFACT_ALIAS",
        "action_type": "webhook",
        "created_at": datetime.now(UTC).isoformat(),
        "action": action,
        "event": {"event_id": event_id, "event_type": "ADD_ARTIFACT_ALIAS"},
    }


async def produce_jobs(settings: Settings, topic: str, jobs: list[dict[str, Any]]) -> None:
    """Produce jobs keyed by automation id; returns when Kafka acknowledged them."""
    async with producer(settings.kafka_bootstrap_servers) as prod:
        futures = [
            await prod.send(topic, key=j["automation_id"].encode(), value=serialization.dumps(j))
            for j in jobs
        ]
        await asyncio.gather(*futures)


@asynccontextmanager
async def dispatcher(
    settings: Settings, kind: DispatchKind = "webhook", **kwargs: Any
) -> AsyncIterator[Dispatcher]:
    """An in-process dispatcher, started and assigned its partitions."""
    service = Dispatcher(settings, kind, **kwargs)
    await service.start()
    try:
        async with asyncio.timeout(30):
            await service.wait_ready()
        yield service
    finally:
        await service.stop()


def dispatch_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child dispatcher the same settings, `dispatch` included."""
    env = settings_env(settings)
    for name, value in settings.dispatch.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = serialization.dumps_str(value)
        else:
            text = str(value)
        env[f"HOOKSTREAM_DISPATCH__{name.upper()}"] = text
    return env


class DispatcherProcess:
    """`hookstream dispatch <kind>` as a real child process."""

    def __init__(
        self,
        settings: Settings,
        kind: DispatchKind,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.log_path = log_path
        self.env = {**dispatch_env(settings), **(extra_env or {})}
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, path: str) -> str:
        """A URL on the child's web server."""
        return f"http://127.0.0.1:{self.settings.web_port}{path}"

    async def start(self, seconds: float = 60.0) -> DispatcherProcess:
        """Start and wait until /readyz answers 200."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app.cli",
                "dispatch",
                self.kind,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"dispatcher exited with {self.proc.returncode}:\n{self.log()}")
            if await self.status("/readyz") == 200:
                return self
            await asyncio.sleep(0.2)
        raise TimeoutError(f"dispatcher not ready in {seconds}s:\n{self.log()}")

    async def status(self, path: str) -> int | None:
        """HTTP status of a GET, None when nothing answers."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(self.url(path), timeout=aiohttp.ClientTimeout(total=2)) as response,
            ):
                return response.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def metric(self, name: str) -> float:
        """Sum of a metric's samples on the child's /metrics."""
        async with aiohttp.ClientSession() as session, session.get(self.url("/metrics")) as resp:
            text = await resp.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + "{", name + " "))
        )

    def log(self, lines: int = 80) -> str:
        """The end of the child's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                return await self.proc.wait()
        except TimeoutError:
            await self.kill()
            return None
