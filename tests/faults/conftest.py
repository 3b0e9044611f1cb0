"""Fault-suite fixtures: per-test topics, worker processes that are always reaped, the report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    FaultWorker,
    dedicated_broker,
    has_stock_size_limits,
    require_broker_tools,
)
from tests.integration.harness import ROOT
from tests.support import fault_test_settings, free_port

StartWorker = Callable[..., FaultWorker]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/faults carries the `faults` marker (and `integration`)."""
    for item in items:
        if f"tests{os.sep}faults" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def kafka_bootstrap(kafka_bootstrap: str) -> Iterator[str]:
    """The fault suite's broker: one with Kafka's stock size limits (issue 18).

    A stock broker takes records of at most 1 MiB unless the topic says more, as docker
    compose and most clusters do; a broker that raises `message.max.bytes` would hide a
    record the worker sends over what its topic was created for. The session broker is
    used when it is stock; otherwise the suite starts a dedicated stock one, stopped
    when the fault suite's package is done.
    """
    if has_stock_size_limits(kafka_bootstrap):
        yield kafka_bootstrap
        return
    require_broker_tools()
    with dedicated_broker(29092) as (port, _):
        print(
            f"\nfault suite broker: 127.0.0.1:{port} (stock size limits; the session's raises them)"
        )
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def fault_report() -> Iterator[Report]:
    """Figures of every scenario, written to build/faults-report.{json,md} at the end."""
    path = Path(os.environ.get("HOOKSTREAM_FAULTS_REPORT", ROOT / "build" / "faults-report.json"))
    report = Report(path)
    yield report
    report.write()


@pytest.fixture
def fault_settings(kafka_bootstrap: str, uid: str, tmp_path: Path) -> Settings:
    """This test's own topics and consumer group on the session broker; the topics exist."""
    return fault_test_settings(kafka_bootstrap, uid, tmp_path)


@pytest.fixture
def start_fault_worker(fault_settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes (extra env; `wait=False` only spawns); all are reaped after."""
    workers: list[FaultWorker] = []

    def start(
        settings: Settings | None = None,
        *,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        wait: bool = True,
    ) -> FaultWorker:
        worker = FaultWorker(
            settings or fault_settings,
            tmp_path / f"{name}-{len(workers)}.log",
            env=env,
            web_port=free_port(),
        )
        workers.append(worker)
        return worker.start(timeout) if wait else worker.spawn()

    try:
        yield start
    finally:
        for worker in workers:
            try:
                worker.stop(timeout=15)
            finally:
                worker.terminate_quietly()
