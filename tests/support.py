"""Helpers shared by every test tier: settings factories, wait loops, the topic reader.

One home for them (issue 13, point 4). Settings: `isolated_settings` (own topics,
app id and data folder), `module_settings` (those topics exist), `dispatch_test_settings`
(dispatcher timings for tests) and `fault_test_settings` (plus the fault workload's
mirror topic); they were in tests/integration/harness.py, api_support.py,
dispatch_support.py and tests/faults/support.py. Polling: each tier used to write its own:
`eventually` (integration API tests), `wait_for` (the rebalance fault test), `until`
(the fault suite, on the event loop) and the functional tier's async `eventually`.
`TopicReader` reads topics back for the integration and fault tiers (each had its own).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import faust

from app import serialization
from app.kafka.admin import TopicSpec, ensure_topics
from app.kafka.clients import log_reader, partitions_of, rewind
from app.settings import Settings

__all__ = [
    "Record",
    "TopicReader",
    "dispatch_test_settings",
    "eventually",
    "fault_test_settings",
    "free_port",
    "free_ports",
    "isolated_settings",
    "module_settings",
    "offline_app",
    "read_back",
    "until",
    "wait_for",
]

T = TypeVar("T")

_TOPIC_FIELDS = (
    "registry_events_topic",
    "artifact_events_topic",
    "automations_topic",
    "webhook_topic",
    "notification_topic",
    "queue_job_topic",
    "dlq_topic",
    "action_results_topic",
    "actions_dlq_topic",
    "run_events_topic",
)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on loopback (`hookstream up` takes four)."""
    for _ in range(50):
        base = free_port()
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise AssertionError(f"no {count} consecutive free ports")


def isolated_settings(bootstrap: str, uid: str, tmp: Path, **overrides: Any) -> Settings:
    """Settings whose topics, app id (consumer group) and data folder belong to one test."""
    values: dict[str, Any] = {f: f"{Settings.model_fields[f].default}-{uid}" for f in _TOPIC_FIELDS}
    values.update(
        kafka_bootstrap_servers=bootstrap,
        app_id=f"hookstream-{uid}",
        web_port=free_port(),
        data_dir=tmp / "data",
        topic_partitions=4,
    )
    values.update(overrides)
    return Settings(**values)


def module_settings(
    bootstrap: str, tmp: Path, uid: str | None = None, **overrides: Any
) -> Settings:
    """Settings with their own topics and consumer group (fresh unless `uid`); the topics exist."""
    uid = uid or uuid.uuid4().hex[:10]
    settings = isolated_settings(bootstrap, uid, tmp, **overrides)
    asyncio.run(ensure_topics(settings, [TopicSpec(f"model-links-{uid}", 1)]))
    return settings


def dispatch_test_settings(bootstrap: str, uid: str, tmp: Path, **dispatch: Any) -> Settings:
    """Per-test topics and group; loopback http allowed; tiny retry delays."""
    values: dict[str, Any] = {
        "allow_http": True,
        "allowed_networks": ["127.0.0.1/32"],
        "timeout_seconds": 2.0,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 2.0,
        "retry_tiers_seconds": [0.2, 1.0],
        "max_attempts": 5,
        "commit_interval_seconds": 0.1,
        "drain_seconds": 2.0,
        "session_timeout_seconds": 6.0,
    }
    values.update(dispatch)
    return isolated_settings(bootstrap, uid, tmp, topic_partitions=2, dispatch=values)


def fault_test_settings(bootstrap: str, uid: str, tmp: Path, **overrides: Any) -> Settings:
    """Isolated settings whose topics exist (plus the fault workload's kafka-action topic)."""
    settings = isolated_settings(bootstrap, uid, tmp, **overrides)
    asyncio.run(ensure_topics(settings, [TopicSpec(f"fault-mirror-{uid}", 4)]))
    return settings


def offline_app(name: str, **settings: Any) -> Any:
    """A faust.App for in-process tests: memory store, and a broker nothing can reach.

    Port 9 answers nobody, so a test that would touch Kafka fails instead of using the
    development broker on :9092.
    """
    return faust.App(
        f"{name}-{uuid.uuid4().hex[:8]}",
        broker="kafka://127.0.0.1:9",
        store="memory://",
        autodiscover=False,
        **{"web_enabled": False, **settings},
    )


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll `condition` every `every` s until true or `timeout`; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, every: float = 0.2) -> T:
    """The first truthy result of `probe`; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(every)


async def until(predicate: Callable[[], bool], seconds: float, every: float = 0.1) -> bool:
    """Poll without blocking the loop (receivers and agents live on it); the last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(every)
    return predicate()


@dataclass(slots=True)
class Record:
    """One record read back from a topic, with the time the reader saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    seen_at: float

    def json(self) -> Any:
        """The value parsed as JSON."""
        return serialization.loads(self.value) if self.value is not None else None


class TopicReader:
    """Reads topics from their beginning in a background thread until closed.

    A thread of its own, so that sync tests can poll it and async tests can await it
    (`started`, `until`, `aclose`) without sharing an event loop with what they test.
    Survives a broker outage: the consumer reconnects and errors are retried.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        key: Callable[[bytes | None], str | None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self._key = key
        self._keys: set[str] = set()
        self._records: list[Record] = []
        # Per topic as well, so that polling one topic does not copy every record read.
        self._by_topic: dict[str, list[Record]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="topic-reader", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(60):
            self.close()
            raise TimeoutError(f"reader did not start: {self._error!r}")
        if self._error is not None:
            raise RuntimeError(f"topic reader failed: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def started(self) -> Self:
        """Start from async code: the wait for the first assignment runs off the loop."""
        return await asyncio.to_thread(self.__enter__)

    def close(self) -> None:
        """Stop the thread (bounded)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    async def aclose(self) -> None:
        """Close from async code."""
        await asyncio.to_thread(self.close)

    def records(self, topic: str | None = None, since: int = 0) -> list[Record]:
        """A snapshot of what was read so far (of one topic, or all), from index `since`."""
        with self._lock:
            if topic is None:
                return self._records[since:]
            return self._by_topic.get(topic, [])[since:]

    def values(self, topic: str | None = None) -> list[Any]:
        """The values read so far, parsed as JSON."""
        return [r.json() for r in self.records(topic)]

    def has_all(self, keys: Iterable[str]) -> bool:
        """Whether a record with each of these keys (see `key=`) was read."""
        with self._lock:
            return self._keys.issuperset(keys)

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys (see `key=`) not read yet."""
        with self._lock:
            return set(keys) - self._keys

    def count(self, topic: str | None = None) -> int:
        """How many records were read so far."""
        with self._lock:
            if topic is None:
                return len(self._records)
            return len(self._by_topic.get(topic, []))

    def wait(self, done: Callable[[Self], bool], timeout: float, poll: float = 0.2) -> bool:
        """Poll `done(self)` until true or timeout; returns the last answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self):
                return True
            self._raise_failure()
            time.sleep(poll)
        return done(self)

    async def until(
        self, predicate: Callable[[list[Any]], bool], seconds: float = 20.0
    ) -> list[Any]:
        """Await until `predicate(values)` holds; returns the values (TimeoutError if not)."""
        deadline = time.monotonic() + seconds
        while not predicate(values := self.values()):
            self._raise_failure()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topics}: condition not met in {seconds}s: {values}")
            await asyncio.sleep(0.05)
        return values

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"topic reader failed: {self._error!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by wait(), until() and __enter__
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        consumer = await log_reader(
            self.bootstrap,
            client_id="hookstream-test-reader",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=32 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        try:
            await rewind(consumer, await partitions_of(self.bootstrap, self.topics))
            self._ready.set()
            while not self._stop.is_set():
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                except Exception:  # a broker outage: the client reconnects
                    await asyncio.sleep(0.5)
                    continue
                now = time.monotonic()
                fresh = [
                    Record(
                        r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ()), now
                    )
                    for records in batches.values()
                    for r in records
                ]
                if fresh:
                    keys = [self._key(r.value) for r in fresh] if self._key is not None else []
                    with self._lock:
                        self._records.extend(fresh)
                        for record in fresh:
                            self._by_topic.setdefault(record.topic, []).append(record)
                        self._keys.update(k for k in keys if k is not None)
        finally:
            await consumer.stop()


async def read_back(settings: Settings, *topics: str) -> TopicReader:
    """A started reader of `topics` on the settings' broker, for async tests (`aclose` it)."""
    return await TopicReader(settings.kafka_bootstrap_servers, topics).started()
