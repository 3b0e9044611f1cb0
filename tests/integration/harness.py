"""Real worker processes and Kafka helpers for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from app import serialization
from app.kafka.clients import produce
from app.settings import Settings
from tests.support import TopicReader

__all__ = [
    "WorkerProcess",
    "consume",
    "produce_events",
    "publish",
    "settings_env",
]

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    for name, value in settings.model_dump(exclude={"api_token"}).items():
        if isinstance(value, dict | list) or value is None:
            continue
        env[f"HOOKSTREAM_{name.upper()}"] = str(value)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    if settings.api_token is not None:
        env["HOOKSTREAM_API_TOKEN"] = settings.api_token.get_secret_value()
    return env


class WorkerProcess:
    """`hookstream worker` as a real child process."""

    def __init__(self, settings: Settings, log_path: Path, *, web_port: int | None = None) -> None:
        # Each worker its own table data dir, named after its log (kept across its own
        # restarts): RocksDB locks a partition's files, so two live workers on one dir
        # would wait on each other's locks and then crash.
        self.settings = settings.model_copy(
            update={
                "web_port": web_port or settings.web_port,
                "data_dir": settings.data_dir / log_path.stem,
            }
        )
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the worker's web server."""
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self, timeout: float = 90.0) -> Self:
        """Start and wait until /readyz answers 200."""
        return self.spawn().wait_ready(timeout)

    def environment(self) -> dict[str, str]:
        """The child's environment: the settings as HOOKSTREAM_* variables."""
        return settings_env(self.settings)

    def spawn(self) -> Self:
        """Start the process without waiting."""
        # Faust creates the data dir itself, but not its parents.
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 90.0) -> Self:
        """Wait until /readyz answers 200; raises if the process exits or time runs out."""
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.http_status("/readyz") == 200:
                return self
            time.sleep(0.25)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    def http_status(self, path: str) -> int | None:
        """Status of a GET, or None when nothing answers."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=3) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return None

    def get(self, path: str) -> bytes:
        """Body of a GET."""
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return bytes(response.read())

    def log_tail(self, lines: int = 60) -> str:
        """The end of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def produce_events(settings: Settings, topic: str, events: Iterable[dict[str, Any] | bytes]) -> int:
    """Produce events keyed by collection path (raw bytes are sent unkeyed, as given)."""
    records: list[tuple[bytes | None, bytes | None]] = []
    for event in events:
        if isinstance(event, bytes):
            records.append((None, event))
            continue
        artifact = event.get("artifact") or {}
        key = f"{event.get('entity')}/{event.get('project')}/{artifact.get('collection')}"
        records.append((key.encode(), serialization.dumps(event)))
    return asyncio.run(
        produce(
            settings.kafka_bootstrap_servers,
            topic,
            records,
            max_request_size=settings.max_record_bytes,
        )
    )


def publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Send each event to the topic its kind belongs on, keyed by collection path."""
    for event in events:
        topic = (
            settings.registry_events_topic
            if "registry" in event
            else settings.artifact_events_topic
        )
        produce_events(settings, topic, [event])


def consume(
    settings: Settings, topic: str, *, expect: int, timeout: float = 30.0, settle: float = 0.0
) -> list[tuple[bytes | None, Any]]:
    """Read a topic from the beginning until `expect` records (then `settle` more seconds)."""
    with TopicReader(settings.kafka_bootstrap_servers, [topic]) as reader:
        if reader.wait(lambda r: r.count() >= expect, timeout) and settle:
            time.sleep(settle)
        return [(record.key, record.json()) for record in reader.records()]
