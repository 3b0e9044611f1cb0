"""Webhook deliveries decided by the worker owning the event's partition (ingest views).

Two API rigs (test_api_views': real views on real Faust web apps, RecordingWrites for
Kafka) on real ports, each with a memory stand-in for the worker's deliveries table;
the group's assignment (what Faust's router reports) is set by the test. MLflow's
deliveries are signed by MLflow's own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.api.routing import SERVED_BY_HEADER
from app.core.deliveries import DELIVERY_HEADER
from tests.functional.test_api_views import Rig
from tests.support import free_port
from tests.webhook_senders import mlflow_delivery

SECRET = "mlflow-routing-secret"
ALIAS = {"name": "fraud", "alias": "champion", "version": "3"}
CHANGELOG = "app-ingest-deliveries-changelog"
PARTITIONS = 4


@dataclass
class MemoryDeliveries:
    """The deliveries table as the views see it (app.api.http.DeliveryRecords)."""

    name: str = "ingest-deliveries"
    changelog_topic: str = CHANGELOG
    partitions: int = PARTITIONS
    recorded: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    def seen(self, event_id: str) -> bool:
        """Whether the delivery was recorded."""
        return event_id in self.recorded

    async def record(self, event_id: str, topic: str, partition: int, offset: int) -> None:
        """Record where it was written."""
        self.recorded.setdefault(event_id, (topic, partition, offset))


class Worker:
    """One rig serving on its own port, with its deliveries table."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.deliveries = MemoryDeliveries()
        self.rig = Rig(
            ingest_mlflow_secret=SECRET,
            deliveries=self.deliveries,
            canonical_url=self.url,
        )
        self.assign({})

    def assign(self, owners: Mapping[str, list[int]]) -> None:
        """What Faust's router reports: worker URL -> changelog partitions it holds."""
        metadata = {url: {CHANGELOG: parts} for url, parts in owners.items()}
        self.rig.app.router.table_metadata = lambda name: metadata


@pytest.fixture
async def workers() -> AsyncIterator[tuple[Worker, TestClient[Any, Any], Worker]]:
    """Worker `a` (with a client) and worker `b`, both serving; b owns every partition."""
    a, b = Worker(), Worker()
    everything = {b.url: list(range(PARTITIONS))}
    a.assign(everything)
    b.assign(everything)
    server_b = TestServer(b.rig.app.web.web_app, port=b.port)
    await server_b.start_server()
    try:
        async with TestClient(TestServer(a.rig.app.web.web_app, port=a.port)) as client:
            yield a, client, b
    finally:
        await server_b.close()
        await a.rig.app.http_client.close()


async def test_a_delivery_and_its_retry_reaching_another_worker_give_one_write(
    workers: tuple[Worker, TestClient[Any, Any], Worker],
) -> None:
    """Posted to a, the delivery is forwarded to b (the owner), which writes it once with
    the delivery header and records it; the retry, again to a, is b's 200 duplicate."""
    a, client, b = workers
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, SECRET)
    first = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert first.status == 202, await first.text()
    assert first.headers[SERVED_BY_HEADER] == b.url
    event_id = (await first.json())["event_id"]
    retry = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert retry.status == 200, await retry.text()
    assert (await retry.json())["duplicate"] is True
    assert retry.headers[SERVED_BY_HEADER] == b.url
    assert a.rig.writes.writes == []
    [write] = b.rig.writes.writes
    assert write.headers == ((DELIVERY_HEADER, event_id.encode()),)
    assert b.deliveries.recorded[event_id] == (write.topic, write.partition, write.offset)


async def test_a_delivery_recorded_before_a_restart_is_a_duplicate() -> None:
    """A worker with an empty memory (just restarted) whose table holds the delivery
    (restored from the changelog) answers 200 duplicate and writes nothing."""
    worker = Worker()
    worker.assign({worker.url: list(range(PARTITIONS))})
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, SECRET)
    event_id = f"mlflow-{delivery.headers['X-MLflow-Delivery-Id']}"
    worker.deliveries.recorded[event_id] = ("registry-events", 1, 17)
    async with TestClient(TestServer(worker.rig.app.web.web_app, port=worker.port)) as client:
        reply = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
        assert reply.status == 200, await reply.text()
        assert (await reply.json()) == {
            "published": False,
            "duplicate": True,
            "event_id": event_id,
        }
    assert worker.rig.writes.writes == []


async def test_no_owner_is_503_with_a_reason_and_nothing_written() -> None:
    """While the event's partition has no owner (a rebalance), 503 with Retry-After."""
    worker = Worker()
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, SECRET)
    async with TestClient(TestServer(worker.rig.app.web.web_app, port=worker.port)) as client:
        reply = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
        assert reply.status == 503
        assert "(re)assigned" in (await reply.json())["error"]
        assert reply.headers["Retry-After"] == "1"
    assert worker.rig.writes.writes == []


async def test_a_forwarded_delivery_reaching_a_non_owner_is_503_not_forwarded_again(
    workers: tuple[Worker, TestClient[Any, Any], Worker],
) -> None:
    """The assignments disagree (a partition moving): a forwarded request is never
    forwarded again; 503 'moving', nothing written anywhere."""
    a, client, b = workers
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, SECRET)
    headers = {**delivery.headers, "Hookstream-Forwarded-By": b.url}
    reply = await client.post("/ingest/mlflow", data=delivery.body, headers=headers)
    assert reply.status == 503
    assert "moving" in (await reply.json())["error"]
    assert a.rig.writes.writes == []
    assert b.rig.writes.writes == []


async def test_an_owner_that_does_not_answer_is_503() -> None:
    """The owner named by the group is gone: 503 with the reason, never 500."""
    worker = Worker()
    worker.assign({f"http://127.0.0.1:{free_port()}": list(range(PARTITIONS))})
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, SECRET)
    try:
        async with TestClient(TestServer(worker.rig.app.web.web_app, port=worker.port)) as c:
            reply = await c.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
            assert reply.status == 503
            assert "did not answer" in (await reply.json())["error"]
    finally:
        await worker.rig.app.http_client.close()
    assert worker.rig.writes.writes == []
