"""Integration fixtures: per-test settings and topics, real worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.integration.harness import WorkerProcess
from tests.support import module_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark integration tests so `-m "not integration"` leaves them out."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def hs_settings(kafka_bootstrap: str, uid: str, tmp_path: Path) -> Settings:
    """Settings with this test's own topics and consumer group; the topics exist."""
    return module_settings(kafka_bootstrap, tmp_path, uid)


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


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker shared by a module's tests, on that module's own `settings` fixture."""
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("worker-log") / "worker.log")
    try:
        yield worker.start()
    finally:
        worker.stop()
