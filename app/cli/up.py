"""`hookstream up`: the whole system on one machine, one command, one Ctrl-C.

It creates the topics, applies an automations file, then runs four children: the worker,
the webhook and notification dispatchers and a local receiver (`hookstream listen`),
prints where each listens and says when every `/readyz` answers. Their output is
interleaved, each line prefixed with the child's name. SIGINT or SIGTERM stops them all
(dispatchers and worker first, so their in-flight deliveries still reach the receiver;
SIGKILL after a grace period or at a second signal). When one child exits on its own,
the others are stopped and `up` exits 1: a half-running system is never left behind.

Development secrets: every secret an applied automation names (webhook `secret` and
`access_token`, notification `channel`) that the dispatchers' secret source does not
hold is generated once into `<data_dir>/dev-secrets/` (mode 0600; a channel becomes the
receiver's `/notifications/<NAME>` URL), and the receiver verifies with the same names.
With `dispatch.secrets_dir` configured nothing is generated: the operator's folder is
used as it is. The receiver keeps each delivery's body and headers in
`<data_dir>/deliveries/` for `hookstream verify-signature`. Children are started in
their own sessions, so a terminal's Ctrl-C reaches `up` alone and the stop order above
holds.

Loopback delivery stays refused unless `HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK=true`
(`make run` sets it); `up` warns about every automation URL the dispatchers would refuse.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import os
import secrets as random_secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

import aiohttp
from aiokafka.errors import KafkaError

from app.contract.automations import Automation, NotificationAction, WebhookAction
from app.core.loader import load_automations
from app.dispatch.delivery_errors import DispatchError, SecretNotConfiguredError
from app.dispatch.netguard import NetworkPolicy, check_url
from app.dispatch.secrets import SecretResolver
from app.errors import InvalidAutomationError
from app.kafka.admin import ensure_topics
from app.kafka.automations import apply_automations
from app.settings import Settings

__all__ = [
    "Child",
    "Ports",
    "Supervisor",
    "dev_secrets",
    "local_url",
    "plan_children",
    "refused_urls",
    "run_up",
    "secret_names",
]

_DEV_SECRETS = "dev-secrets"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Lines `up` prints before the supervisor runs, aligned with its (longest name: notification).
_UP = "up".ljust(len("notification")) + " |"


@dataclass(frozen=True, slots=True)
class Ports:
    """Where each child listens (web ports on `web_host`)."""

    worker: int
    webhook: int
    notification: int
    receiver: int

    @classmethod
    def from_settings(cls, settings: Settings, receiver: int | None = None) -> Ports:
        """The worker's `web_port` and the three after it (the receiver's unless given)."""
        base = settings.web_port
        return cls(base, base + 1, base + 2, receiver if receiver is not None else base + 3)

    def busy(self, host: str) -> list[int]:
        """The ports something already listens on."""
        taken = []
        for port in (self.worker, self.webhook, self.notification, self.receiver):
            with socket.socket() as sock:
                # As the servers do: connections of a previous run in TIME_WAIT do not count.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    taken.append(port)
        return taken


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn (Linux) that has the child get SIGTERM when `up` dies, even by SIGKILL.

    libc is loaded here, in the parent: between fork and exec the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


@dataclass(frozen=True, slots=True)
class Child:
    """One supervised process: its name, command, environment and health URL."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    url: str | None = None
    what: str = ""


def secret_names(automations: Sequence[Automation]) -> dict[str, str]:
    """Secret name -> kind (`signing`, `token`, `channel`) of every applied automation."""
    names: dict[str, str] = {}
    for automation in automations:
        action = automation.action
        if isinstance(action, WebhookAction):
            if action.secret:
                names[action.secret] = "signing"
            if action.access_token:
                names.setdefault(action.access_token, "token")
        elif isinstance(action, NotificationAction):
            names.setdefault(action.channel, "channel")
    return names


def dev_secrets(
    settings: Settings,
    automations: Sequence[Automation],
    environ: Mapping[str, str],
    receiver_url: str,
) -> tuple[Path | None, list[str], list[str]]:
    """(secrets folder for the children, names generated now, names still missing)."""
    names = secret_names(automations)
    configured = settings.dispatch.secrets_dir
    folder = configured or settings.data_dir / _DEV_SECRETS
    resolver = SecretResolver(
        environ=environ, secrets_dir=folder, env_prefix=settings.dispatch.secrets_env_prefix
    )
    generated: list[str] = []
    missing: list[str] = []
    for name, kind in sorted(names.items()):
        try:
            resolver.resolve(name)
            continue
        except SecretNotConfiguredError:
            pass
        if configured is not None:
            missing.append(name)
            continue
        if kind == "signing":
            value = "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()
        elif kind == "token":
            value = random_secrets.token_urlsafe(24)
        else:
            value = f"{receiver_url}/notifications/{name}"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / name
        # Created 0600 before the value is written: no moment when others can read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        generated.append(name)
    return (folder if folder.exists() else configured), generated, missing


def refused_urls(settings: Settings, automations: Sequence[Automation]) -> list[str]:
    """`id: reason` for every enabled webhook URL the dispatchers' network policy refuses."""
    policy = NetworkPolicy.from_settings(settings.dispatch)
    found = []
    for automation in automations:
        action = automation.action
        if not automation.enabled or not isinstance(action, WebhookAction):
            continue
        if "${" in action.url:
            continue  # rendered per event; judged at delivery
        try:
            check_url(action.url, policy)
        except DispatchError as exc:
            found.append(f"{automation.id}: {action.url}: {exc}")
    return found


def local_url(settings: Settings, port: int) -> str:
    """Where a client on this machine reaches a child listening on `web_host:port`."""
    return settings.model_copy(update={"web_port": port, "api_url": None}).client_url


def plan_children(
    settings: Settings,
    ports: Ports,
    environ: Mapping[str, str],
    *,
    secrets_dir: Path | None,
    receiver_secret_names: Sequence[str],
    receiver_status: int = 200,
) -> list[Child]:
    """The four children, each with its port and the shared secret folder in its env."""
    host = settings.web_host
    base = {**environ, "PYTHONUNBUFFERED": "1"}
    if secrets_dir is not None:
        base["HOOKSTREAM_DISPATCH__SECRETS_DIR"] = str(secrets_dir)
    cli = (sys.executable, "-m", "app.cli")

    def child(name: str, port: int, args: Sequence[str], what: str) -> Child:
        env = {**base, "HOOKSTREAM_WEB_PORT": str(port)}
        return Child(name, (*cli, *args), env, local_url(settings, port), what)

    listen = ["listen", "--host", host, "--port", str(ports.receiver)]
    listen += ["--status", str(receiver_status), "--save", str(settings.data_dir / "deliveries")]
    for name in receiver_secret_names:
        listen += ["--secret-name", name]
    return [
        child("receiver", ports.receiver, listen, "hookstream listen: deliveries end here"),
        child("worker", ports.worker, ["worker"], "management API, /healthz, /metrics"),
        child("webhook", ports.webhook, ["dispatch", "webhook"], "webhook dispatcher"),
        child(
            "notification",
            ports.notification,
            ["dispatch", "notification"],
            "notification dispatcher",
        ),
    ]


class Supervisor:
    """Runs children, prefixes their output, stops all when asked or when one dies."""

    def __init__(
        self,
        children: Sequence[Child],
        out: TextIO,
        *,
        grace_seconds: float = 30.0,
        ready_timeout_seconds: float = 180.0,
        last_to_stop: Sequence[str] = ("receiver",),
    ) -> None:
        self.children = list(children)
        self.out = out
        self.grace = grace_seconds
        self.ready_timeout = ready_timeout_seconds
        self.last_to_stop = frozenset(last_to_stop)
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self._signals = 0
        self._width = max((len(c.name) for c in self.children), default=4)
        self._preexec = _parent_death_signal()

    def say(self, text: str, name: str = "up") -> None:
        """One prefixed line."""
        print(f"{name:<{self._width}} | {text}", file=self.out, flush=True)

    def request_stop(self) -> None:
        """A signal arrived: the first stops gracefully, the second kills."""
        self._signals += 1
        if self._signals > 1:
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        self._stop.set()

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.say(line.decode("utf-8", "replace").rstrip("\n"), name)

    async def _start(self, child: Child) -> asyncio.Task[None]:
        proc = await asyncio.create_subprocess_exec(
            *child.argv,
            env=dict(child.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        self.procs[child.name] = proc
        assert proc.stdout is not None
        return asyncio.create_task(self._pump(child.name, proc.stdout))

    async def _ready(self) -> bool:
        """True once every child's `/readyz` answers 200; False if one died or time ran out."""
        # Readiness, not liveness: the worker answers /healthz before its automations are
        # loaded, and "all parts are up" must mean the quick start's commands work.
        pending = {c.name: f"{c.url}/readyz" for c in self.children if c.url}
        deadline = time.monotonic() + self.ready_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while pending and time.monotonic() < deadline and not self._stop.is_set():
                for name, url in list(pending.items()):
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(url) as response:
                            if response.status == 200:
                                del pending[name]
                if any(p.returncode is not None for p in self.procs.values()):
                    return False
                if pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), 0.5)
        if pending and not self._stop.is_set():
            self.say(f"not healthy after {self.ready_timeout:g}s: {', '.join(sorted(pending))}")
        return not pending

    async def _stop_children(self, names: Sequence[str]) -> None:
        procs = [self.procs[n] for n in names if self.procs[n].returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), self.grace)
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    self.say(f"pid {proc.pid} did not stop within {self.grace:g}s: killed")
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))

    async def _watch(self) -> str | None:
        """Wait until all are healthy, then for a stop request or a death; why it failed."""
        waits = {asyncio.create_task(proc.wait()): name for name, proc in self.procs.items()}
        stopper = asyncio.create_task(self._stop.wait())
        try:
            if await self._ready():
                self.say("all parts are up; Ctrl-C stops them all")
            elif not self._stop.is_set():
                dead = [
                    f"{n} exited with code {p.returncode}"
                    for n, p in self.procs.items()
                    if p.returncode is not None
                ]
                return ", ".join(dead) or "not every part came up"
            done, _ = await asyncio.wait({stopper, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    return f"{waits[task]} exited with code {task.result()}"
            return None
        finally:
            for task in (stopper, *waits):
                task.cancel()

    async def run(self) -> int:
        """Start everything, wait for a signal or a death, stop everything; the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        pumps: list[asyncio.Task[None]] = []
        failed: str | None = None
        try:
            for child in self.children:
                try:
                    pumps.append(await self._start(child))
                except OSError as exc:  # a command that cannot be started at all
                    failed = f"cannot start {child.name}: {exc}"
                    break
            if failed is None:
                for child in self.children:
                    self.say(f"{child.name:<{self._width}}  {child.url or '-':<24}  {child.what}")
                failed = await self._watch()
        finally:
            # Whatever happened above, no child outlives `up`.
            self.say(f"{failed}; stopping the others" if failed else "stopping")
            first = [n for n in self.procs if n not in self.last_to_stop]
            await self._stop_children(first)
            await self._stop_children([n for n in self.procs if n in self.last_to_stop])
            await asyncio.gather(*pumps, return_exceptions=True)
            for name, proc in self.procs.items():
                self.say(f"{name} exited with code {proc.returncode}")
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return 1 if failed else 0


def _load(path: Path | None) -> list[Automation] | None:
    """The automations to apply; None (reasons on stderr) when the file is unusable."""
    try:
        return [a for _, a in load_automations(path)] if path is not None else []
    except InvalidAutomationError as exc:
        print(f"error: {path}: invalid automations, nothing started", file=sys.stderr)
        for where, reason in exc.errors:
            print(f"  {where}: {reason}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    return None


def _prepare(
    settings: Settings, automations: list[Automation], ports: Ports, out: TextIO
) -> Path | Literal[False] | None:
    """Topics, the applied automations, development secrets: the secrets folder, or False."""
    try:
        asyncio.run(ensure_topics(settings))
        applied = asyncio.run(apply_automations(settings, automations))
    except (KafkaError, OSError) as exc:
        print(
            f"error: Kafka at {settings.kafka_bootstrap_servers}: {exc}; nothing started",
            file=sys.stderr,
        )
        return False
    for result in applied:
        print(
            f"{_UP} automation/{result.id} {result.status} (revision {result.revision})", file=out
        )
    # The dispatchers read the environment as the secret source too (app/dispatch/secrets.py).
    folder, generated, missing = dev_secrets(
        settings, automations, os.environ, local_url(settings, ports.receiver)
    )
    if generated:
        print(f"{_UP} development secrets written to {folder}: {', '.join(generated)}", file=out)
    for name in missing:
        print(f"{_UP} warning: secret {name} is not configured; its deliveries fail", file=out)
    for refusal in refused_urls(settings, automations):
        print(
            f"{_UP} warning: {refusal} (a local receiver needs "
            "HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK=true, which `make run` sets)",
            file=out,
        )
    return folder


def run_up(
    settings: Settings,
    path: Path | None,
    receiver_port: int | None,
    out: TextIO,
    *,
    receiver_status: int = 200,
) -> int:
    """`hookstream up`: prepare, then supervise the four children; the exit code."""
    automations = _load(path)
    if automations is None:
        return 1
    ports = Ports.from_settings(settings, receiver_port)
    busy = ports.busy(settings.web_host)
    if busy:
        print(f"error: port(s) {', '.join(map(str, busy))} already in use", file=sys.stderr)
        return 1
    try:
        folder = _prepare(settings, automations, ports, out)
    except KeyboardInterrupt:  # Ctrl-C while topics or automations are written
        return 130
    if folder is False:
        return 1
    signing = sorted(n for n, kind in secret_names(automations).items() if kind == "signing")
    children = plan_children(
        settings,
        ports,
        os.environ,
        secrets_dir=folder,
        receiver_secret_names=signing,
        receiver_status=receiver_status,
    )
    grace = settings.dispatch.drain_seconds + 15
    return asyncio.run(Supervisor(children, out, grace_seconds=grace).run())
