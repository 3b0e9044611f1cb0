"""Two worker processes in one consumer group: one list of automations, one history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.routing import FORWARDED_HEADER, key_partition
from app.settings import Settings
from tests.factories import event_dict
from tests.integration.api_support import http, webhook_automation
from tests.integration.harness import WorkerProcess, consume
from tests.support import eventually, free_port, module_settings

AUTOMATION = "two-workers"


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Own topics and group; no token (loopback writes are allowed without one)."""
    # Per-automation counters: the test reads each worker's jobs of AUTOMATION.
    return module_settings(
        kafka_bootstrap, tmp_path_factory.mktemp("two"), metrics_per_automation=True
    )


@pytest.fixture(scope="module")
def workers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    """Worker A and worker B: same app id, different web ports, both ready."""
    logs: Path = tmp_path_factory.mktemp("two-log")
    a = WorkerProcess(settings, logs / "a.log")
    b = WorkerProcess(settings, logs / "b.log", web_port=free_port())
    try:
        a.start()
        b.start()
        # B's arrival rebalances A: wait until both hold partitions again.
        eventually(
            lambda: a.http_status("/readyz") == 200 and b.http_status("/readyz") == 200, timeout=60
        )
        yield a, b
    finally:
        b.stop()
        a.stop()


def collections_on_every_partition(partitions: int) -> list[str]:
    """Collection names whose keys cover every partition of the event topics."""
    names: list[str] = []
    covered: set[int] = set()
    for i in range(1000):
        name = f"model-{i}"
        partition = key_partition(f"acme/wandb-registry-model/{name}".encode(), partitions)
        if partition not in covered:
            covered.add(partition)
            names.append(name)
        if len(covered) == partitions:
            return names
    raise AssertionError("no spread found")


def emitted(worker: WorkerProcess) -> float:
    """hookstream_jobs_emitted_total of AUTOMATION on this worker."""
    text = worker.get("/metrics").decode()
    pattern = rf'hookstream_jobs_emitted_total\{{[^}}]*automation_id="{AUTOMATION}"[^}}]*\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, text))


def test_created_on_a_fires_on_b_and_b_lists_it(
    workers: tuple[WorkerProcess, WorkerProcess], settings: Settings
) -> None:
    """A's API writes the topic; B's rule book applies it, B fires and B's API lists it."""
    a, b = workers
    created = http("POST", a.url + "/automations", webhook_automation(AUTOMATION))
    assert created.status == 201, created.body
    listed = eventually(lambda: http("GET", b.url + f"/automations/{AUTOMATION}").status == 200)
    assert listed
    assert http("GET", b.url + f"/automations/{AUTOMATION}").json == created.json

    names = collections_on_every_partition(settings.topic_partitions)
    for i, name in enumerate(names):
        event = event_dict(event_id=f"two-{i}", artifact={"collection": name})
        assert http("POST", a.url + "/events", event).status == 202
    expected = {f"two-{i}" for i in range(len(names))}

    def all_jobs() -> bool:
        jobs = consume(settings, settings.webhook_topic, expect=len(names), timeout=5)
        return {v["event_id"] for _, v in jobs if v["automation_id"] == AUTOMATION} == expected

    assert eventually(all_jobs, timeout=30)
    # Every partition got an event and each worker holds some: both emitted jobs.
    assert eventually(lambda: emitted(a) > 0 and emitted(b) > 0, timeout=10)
    assert emitted(a) + emitted(b) == len(names)

    disabled = http("PATCH", b.url + f"/automations/{AUTOMATION}", {"enabled": False})
    assert disabled.status == 200
    assert eventually(
        lambda: http("GET", a.url + f"/automations/{AUTOMATION}").json["enabled"] is False
    )


def test_history_answers_the_same_on_both_workers(
    workers: tuple[WorkerProcess, WorkerProcess], settings: Settings
) -> None:
    """The worker without the partition forwards to its owner; a second hop is refused."""
    a, b = workers
    if http("GET", a.url + f"/automations/{AUTOMATION}").status == 404:
        assert http("POST", a.url + "/automations", webhook_automation(AUTOMATION)).status == 201

    def matched(worker: WorkerProcess) -> int:
        reply = http("GET", worker.url + f"/automations/{AUTOMATION}/history")
        return int(reply.json["counters"]["matched"]) if reply.status == 200 else 0

    assert eventually(lambda: matched(a) > 0 and matched(a) == matched(b), timeout=30)
    from_a = http("GET", a.url + f"/automations/{AUTOMATION}/history")
    from_b = http("GET", b.url + f"/automations/{AUTOMATION}/history")
    assert from_a.json == from_b.json
    owner = from_a.headers["hookstream-served-by"]
    assert owner == from_b.headers["hookstream-served-by"]
    assert owner in {a.url, b.url}, "served by one of the two, whichever owns the partition"
    other = b if owner == a.url else a
    hop = http(
        "GET",
        other.url + f"/automations/{AUTOMATION}/history",
        headers={FORWARDED_HEADER: "http://elsewhere:1"},
    )
    assert hop.status == 503, "a forwarded request is never forwarded again"


def test_the_console_shows_the_same_history_on_both_workers(
    workers: tuple[WorkerProcess, WorkerProcess],
) -> None:
    """The console's history part reads through the owner as the API does: the worker
    without the partition renders the owner's counters and executions."""
    a, b = workers
    if http("GET", a.url + f"/automations/{AUTOMATION}").status == 404:
        assert http("POST", a.url + "/automations", webhook_automation(AUTOMATION)).status == 201
    path = f"/console/automations/{AUTOMATION}/history"

    def matched(worker: WorkerProcess) -> str | None:
        reply = http("GET", worker.url + path)
        found = re.search(r'<dd id="counter-matched">(\d+)</dd>', reply.body.decode())
        return found.group(1) if reply.status == 200 and found else None

    def same() -> str | None:
        left, right = matched(a), matched(b)
        return left if left is not None and left == right and left != "0" else None

    assert eventually(same, timeout=30)
    api_history = http("GET", a.url + f"/automations/{AUTOMATION}/history").json
    page = http("GET", b.url + path).body.decode()
    for execution in api_history["executions"][:3]:
        assert execution["event_id"] in page
