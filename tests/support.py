"""Helpers shared by every test tier: settings factories and wait loops.

One home for them (issue 13, point 4). Settings: `isolated_settings` (own topics,
app id and data folder), `module_settings` (those topics exist), `dispatch_test_settings`
(dispatcher timings for tests) and `fault_test_settings` (plus the fault workload's
mirror topic); they were in tests/integration/harness.py, api_support.py,
dispatch_support.py and tests/faults/support.py. Polling: each tier used to write its own:
`eventually` (integration API tests), `wait_for` (the rebalance fault test), `until`
(the fault suite, on the event loop) and the functional tier's async `eventually`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.kafka.admin import TopicSpec, ensure_topics
from app.settings import Settings

__all__ = [
    "dispatch_test_settings",
    "eventually",
    "fault_test_settings",
    "free_port",
    "isolated_settings",
    "module_settings",
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
