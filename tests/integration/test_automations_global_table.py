"""Automations in a GlobalTable over the automations topic, with three workers (issue 12).

Three worker processes of one app id (own web ports, own data folders). A write through
any worker's API reaches every worker's rule book; the rule book is what matches, so a
write fires on whichever worker owns an event's partition, a disable or delete stops
every worker, and it all survives a SIGKILL (and its rebalance) and a late joiner.

A "witness" automation matches every event the tests send and stays enabled: its job
for an event proves that event was matched, so the absence of another automation's
job for the same event is a real "did not fire", not "not processed yet".

The tests run in file order on one set of workers; each creates its own automations.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from app import serialization
from app.kafka.clients import read_to_end
from app.settings import Settings
from tests.factories import event_dict
from tests.integration.api_support import http, webhook_automation
from tests.integration.harness import WorkerProcess
from tests.integration.test_api_two_workers import collections_on_every_partition
from tests.support import eventually, free_port, module_settings

WITNESS = "gt-witness"


class Cluster:
    """The module's workers: started ones by name, and a factory of fresh ones."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.workers: dict[str, WorkerProcess] = {}
        self.killed: set[str] = set()
        self.sent = 0
        # Every event sent so far: event id -> registry-events partition.
        self.partition_of: dict[str, int] = {}

    def spawn(self, name: str) -> WorkerProcess:
        """A new worker process: own web port and own data folder; not waited for."""
        settings = self.settings.model_copy(update={"data_dir": self.root / f"data-{name}"})
        worker = WorkerProcess(settings, self.root / f"{name}.log", web_port=free_port())
        self.workers[name] = worker
        return worker.spawn()

    def live(self) -> list[WorkerProcess]:
        """The workers not killed, in start order."""
        return [w for name, w in self.workers.items() if name not in self.killed]

    def kill(self, name: str) -> None:
        """SIGKILL one worker."""
        self.workers[name].kill()
        self.killed.add(name)

    def send_events(self, via: WorkerProcess, tag: str, copies: int = 1) -> dict[str, int]:
        """POST `copies` events per event partition through `via`: event id -> partition."""
        out: dict[str, int] = {}
        names = collections_on_every_partition(self.settings.topic_partitions)
        for _ in range(copies):
            for name in names:
                self.sent += 1
                event_id = f"{tag}-{self.sent}"
                event = event_dict(event_id=event_id, artifact={"collection": name})
                reply = http("POST", via.url + "/events", event)
                assert reply.status == 202, reply.body
                out[event_id] = int(reply.json["partition"])
        assert set(out.values()) == set(range(self.settings.topic_partitions))
        self.partition_of.update(out)
        return out


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Own topics and group; no token (loopback writes are allowed without one)."""
    # Per-automation counters: `emitted` reads each worker's jobs of one automation.
    return module_settings(
        kafka_bootstrap, tmp_path_factory.mktemp("gt"), metrics_per_automation=True
    )


@pytest.fixture(scope="module")
def cluster(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Workers a, b and c, all ready and sharing the event partitions; the witness exists."""
    cluster = Cluster(settings, tmp_path_factory.mktemp("gt-workers"))
    try:
        for name in ("a", "b", "c"):
            cluster.spawn(name)
        for worker in cluster.live():
            worker.wait_ready(90)
        assert eventually(lambda: settled(cluster.live(), settings), timeout=45), (
            f"three workers never shared the partitions: {owned_by(cluster.live(), settings)}"
        )
        a = cluster.workers["a"]
        assert http("POST", a.url + "/automations", webhook_automation(WITNESS)).status == 201
        yield cluster
    finally:
        for worker in cluster.workers.values():
            worker.stop(timeout=15)


def event_topic_partitions(worker: WorkerProcess, settings: Settings) -> set[tuple[str, int]]:
    """Event-topic partitions `worker` owns, from its consumer-lag gauge (every 5 s)."""
    topics = {settings.registry_events_topic, settings.artifact_events_topic}
    owned: set[tuple[str, int]] = set()
    for line in worker.get("/metrics").decode().splitlines():
        if line.startswith("hookstream_consumer_lag_messages{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if labels.get("topic") in topics:
                owned.add((labels["topic"], int(labels["partition"])))
    return owned


def owned_by(workers: list[WorkerProcess], settings: Settings) -> dict[str, set[tuple[str, int]]]:
    """Each worker's event partitions, by URL ({} for a worker that does not answer)."""
    out: dict[str, set[tuple[str, int]]] = {}
    for worker in workers:
        try:
            out[worker.url] = event_topic_partitions(worker, settings)
        except OSError:
            out[worker.url] = set()
    return out


def settled(workers: list[WorkerProcess], settings: Settings) -> bool:
    """All ready, each owning some event partitions, together every one exactly once."""
    if not all(w.http_status("/readyz") == 200 for w in workers):
        return False
    parts = owned_by(workers, settings)
    union = [tp for tps in parts.values() for tp in tps]
    return all(parts.values()) and len(union) == len(set(union)) == 2 * settings.topic_partitions


def registry_partitions(worker: WorkerProcess, settings: Settings) -> set[int]:
    """The registry-events partitions `worker` owns (where the test events go)."""
    return {
        p
        for topic, p in event_topic_partitions(worker, settings)
        if topic == settings.registry_events_topic
    }


def emitted(worker: WorkerProcess, automation_id: str) -> float:
    """hookstream_jobs_emitted_total of one automation on this worker."""
    text = worker.get("/metrics").decode()
    pattern = (
        rf'hookstream_jobs_emitted_total\{{[^}}]*automation_id="{automation_id}"[^}}]*\}} (\S+)'
    )
    return sum(float(value) for value in re.findall(pattern, text))


def jobs(settings: Settings) -> dict[str, set[str]]:
    """Every webhook job so far: automation id -> event ids (read up to the end offsets)."""
    return asyncio.run(_jobs(settings))


async def _jobs(settings: Settings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for record in await read_to_end(settings.kafka_bootstrap_servers, settings.webhook_topic):
        job: Any = serialization.loads(record.value or b"null")
        out.setdefault(job["automation_id"], set()).add(job["event_id"])
    return out


def witnessed(settings: Settings, events: set[str]) -> dict[str, set[str]] | None:
    """All jobs once the witness fired on every one of `events` (None before)."""
    current = jobs(settings)
    return current if events <= current.get(WITNESS, set()) else None


def _answers(url: str, status: int) -> bool:
    """GET `url` answers `status` (a probe for `eventually`, bound per worker with partial)."""
    return http("GET", url).status == status


def _disabled(url: str) -> bool:
    """GET `url` shows the automation disabled."""
    return http("GET", url).json["enabled"] is False


def test_a_write_on_a_is_on_b_and_c_and_fires_wherever_the_partition_is(
    cluster: Cluster, settings: Settings
) -> None:
    """Created on A: B and C serve it within seconds, and each worker fires it on its partitions."""
    a, b, c = (cluster.workers[n] for n in "abc")
    created = http("POST", a.url + "/automations", webhook_automation("gt-fires"))
    assert created.status == 201, created.body
    for other in (b, c):
        seen = eventually(partial(_answers, other.url + "/automations/gt-fires", 200), timeout=5)
        assert seen
        assert http("GET", other.url + "/automations/gt-fires").json == created.json

    ownership = {w.url: registry_partitions(w, settings) for w in (a, b, c)}
    assert all(ownership.values()), f"every worker owns a registry partition: {ownership}"
    sent = cluster.send_events(b, "fires", copies=2)
    assert eventually(lambda: witnessed(settings, set(sent)), timeout=30)
    assert jobs(settings)["gt-fires"] == set(sent)
    # The partitions did not move meanwhile, so each worker emitted the jobs of its own.
    assert {w.url: registry_partitions(w, settings) for w in (a, b, c)} == ownership
    for worker in (a, b, c):
        mine = [e for e, p in sent.items() if p in ownership[worker.url]]
        assert emitted(worker, "gt-fires") == len(mine) > 0, worker.url


def test_disabled_on_b_fires_nowhere(cluster: Cluster, settings: Settings) -> None:
    """PATCH enabled=false on B: A and C see it disabled and no worker emits its jobs."""
    a, b, c = (cluster.workers[n] for n in "abc")
    assert http("POST", c.url + "/automations", webhook_automation("gt-disabled")).status == 201
    before = cluster.send_events(a, "pre-disable")
    assert eventually(lambda: witnessed(settings, set(before)), timeout=30)
    assert jobs(settings)["gt-disabled"] == set(before), "enabled, it fires"

    reply = http("PATCH", b.url + "/automations/gt-disabled", {"enabled": False})
    assert reply.status == 200, reply.body
    for worker in (a, b, c):
        assert eventually(partial(_disabled, worker.url + "/automations/gt-disabled"), timeout=5)
    after = cluster.send_events(c, "post-disable", copies=2)
    found = eventually(lambda: witnessed(settings, set(after)), timeout=30)
    assert found["gt-disabled"] & set(after) == set(), "a disabled automation fired"
    assert found["gt-disabled"] == set(before)


def test_deleted_on_c_is_gone_from_a_and_b_and_fires_nowhere(
    cluster: Cluster, settings: Settings
) -> None:
    """DELETE on C: A and B answer 404, the list drops it, no worker emits its jobs."""
    a, b, c = (cluster.workers[n] for n in "abc")
    assert http("POST", a.url + "/automations", webhook_automation("gt-deleted")).status == 201
    assert eventually(
        lambda: http("GET", c.url + "/automations/gt-deleted").status == 200, timeout=5
    )
    before = cluster.send_events(b, "pre-delete")
    assert eventually(lambda: witnessed(settings, set(before)), timeout=30)

    assert http("DELETE", c.url + "/automations/gt-deleted").status == 204
    assert http("GET", c.url + "/automations/gt-deleted").status == 404, "read-your-write on C"
    for worker in (a, b):
        assert eventually(partial(_answers, worker.url + "/automations/gt-deleted", 404), timeout=5)
        listed = {item["id"] for item in http("GET", worker.url + "/automations").json["items"]}
        assert "gt-deleted" not in listed
        assert WITNESS in listed
    after = cluster.send_events(a, "post-delete", copies=2)
    found = eventually(lambda: witnessed(settings, set(after)), timeout=30)
    assert found["gt-deleted"] & set(after) == set(), "a deleted automation fired"
    assert found["gt-deleted"] == set(before)


def test_after_a_sigkill_survivors_take_writes_and_fire_on_the_orphaned_partitions(
    cluster: Cluster, settings: Settings
) -> None:
    """SIGKILL A; a write through B is on B and C, and fires on A's partitions once moved."""
    a, b, c = (cluster.workers[n] for n in "abc")
    orphaned = registry_partitions(a, settings)
    assert orphaned, "A owned some registry partitions"
    cluster.kill("a")
    created = http("POST", b.url + "/automations", webhook_automation("gt-after-kill"))
    assert created.status == 201, created.body
    assert eventually(
        lambda: http("GET", c.url + "/automations/gt-after-kill").status == 200, timeout=5
    )
    assert http("GET", c.url + "/automations/gt-after-kill").json == created.json

    sent = cluster.send_events(c, "after-kill")
    # The group notices the kill after its session timeout, then B and C share A's partitions.
    found = eventually(lambda: witnessed(settings, set(sent)), timeout=45)
    assert set(sent) <= found["gt-after-kill"]
    # A's uncommitted tail is replayed by its partitions' new owners, with today's rules.
    replayed = found["gt-after-kill"] - set(sent)
    assert {cluster.partition_of[e] for e in replayed} <= orphaned, "only A's partitions replay"
    assert eventually(lambda: settled([b, c], settings), timeout=30), owned_by([b, c], settings)
    assert emitted(b, "gt-after-kill") + emitted(c, "gt-after-kill") >= len(sent)


def test_a_late_joiner_holds_every_automation_and_fires(
    cluster: Cluster, settings: Settings
) -> None:
    """A fresh worker D joins: ready, lists what the survivors list, fires on its partitions."""
    b = cluster.workers["b"]
    d = cluster.spawn("d").wait_ready(60)
    assert d.http_status("/readyz") == 200

    def listing(worker: WorkerProcess) -> dict[str, tuple[int, bool]]:
        items = http("GET", worker.url + "/automations").json["items"]
        return {item["id"]: (item["revision"], item["enabled"]) for item in items}

    expected = {
        WITNESS: (1, True),
        "gt-fires": (1, True),
        "gt-disabled": (2, False),
        "gt-after-kill": (1, True),
    }
    assert listing(b) == expected
    assert listing(d) == expected
    assert eventually(lambda: settled(cluster.live(), settings), timeout=45), owned_by(
        cluster.live(), settings
    )
    mine = registry_partitions(d, settings)
    assert mine, "D took some registry partitions"
    sent = cluster.send_events(d, "late", copies=2)
    found = eventually(lambda: witnessed(settings, set(sent)), timeout=30)
    assert set(sent) <= found["gt-after-kill"]
    assert set(sent) <= found["gt-fires"]
    assert emitted(d, "gt-after-kill") >= len([e for e, p in sent.items() if p in mine]) > 0
