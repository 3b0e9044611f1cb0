"""Integration fixtures: per-test settings and topics, real worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.admin import TopicSpec, ensure_topics
from app.settings import Settings
from tests.integration.harness import WorkerProcess, isolated_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark integration tests so `-m "not integration"` leaves them out."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def hs_settings(kafka_bootstrap: str, uid: str, tmp_path: Path) -> Settings:
    """Settings with this test's own topics and consumer group; the topics exist."""
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path)
    extra = [TopicSpec(f"model-links-{uid}", 1)]
    asyncio.run(ensure_topics(settings, extra))
    return settings


@pytest.fixture
def start_worker(hs_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `hookstream worker` child processes; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings | None = None, name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(settings or hs_settings, tmp_path / f"{name}-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
