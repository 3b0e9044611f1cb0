"""Platforms as sources on a real broker and worker: MLflow 3 and W&B webhooks, the producer.

Each delivery becomes an event on registry-events and a job on actions.webhook; repeated
deliveries give one event and one job.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.producer import Producer
from app.serialization import dumps
from app.settings import Settings
from tests.factories import event_dict, run_automation_dict
from tests.integration.api_support import Reply, http, webhook_automation
from tests.integration.harness import WorkerProcess, consume
from tests.support import TopicReader, eventually, free_port, module_settings
from tests.webhook_senders import Delivery, mlflow_delivery, wandb_delivery, wandb_payload

TOKEN = "ingest-test-token"
MLFLOW_SECRET = "mlflow-integration-secret"
WANDB_SECRET = "wandb-integration-secret"


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Own topics and group; both ingest secrets; a token (ingest must not need it)."""
    return module_settings(
        kafka_bootstrap,
        tmp_path_factory.mktemp("ingest"),
        api_token=TOKEN,
        ingest_mlflow_secret=MLFLOW_SECRET,
        ingest_wandb_secret=WANDB_SECRET,
    )


@pytest.fixture(scope="module", autouse=True)
def automations(worker: WorkerProcess) -> None:
    """A webhook automation on alias events of MLflow's registry and of acme's."""
    for automation in (
        webhook_automation(
            "mlflow-champion",
            scope={"type": "registry", "entity": "mlflow", "registry": "mlflow"},
            filter={"alias": "champion"},
        ),
        webhook_automation("acme-production"),
        webhook_automation(
            "mlflow-cloudevents",
            scope={"type": "registry", "entity": "mlflow", "registry": "mlflow"},
            filter={"alias": "ce-alias"},
            job_format="cloudevents",
        ),
        run_automation_dict(
            {"run_state_filter": {"states": ["FINISHED"]}}, event="RUN_STATE", id="run-ended"
        ),
    ):
        reply = http("POST", worker.url + "/automations", automation, token=TOKEN)
        assert reply.status == 201, reply.body


def post(worker: WorkerProcess, path: str, delivery: Delivery) -> Reply:
    """POST a signed delivery as the platform sends it (no bearer token)."""
    return http("POST", worker.url + path, raw=delivery.body, headers=delivery.headers)


def records_of(settings: Settings, topic: str, event_id: str) -> list[dict[str, Any]]:
    """Every record on `topic` carrying `event_id`, once the first arrived (then a settle)."""

    def found() -> list[dict[str, Any]] | None:
        records = consume(settings, topic, expect=0, settle=0.5)
        mine = [value for _, value in records if value.get("event_id") == event_id]
        return mine or None

    first = eventually(found, timeout=30)
    # Whatever a repeat would have added has arrived by now too.
    again = consume(settings, topic, expect=len(first), settle=2.0)
    return [value for _, value in again if value.get("event_id") == event_id]


def test_mlflow_signed_alias_created_becomes_one_job_however_often_delivered(
    worker: WorkerProcess, settings: Settings
) -> None:
    """MLflow's own signed model_version_alias.created: 202, then 200 duplicate twice;
    one event on registry-events and one job on actions.webhook for it."""
    delivery = mlflow_delivery(
        "model_version_alias.created",
        {"name": "fraud", "alias": "champion", "version": "4"},
        MLFLOW_SECRET,
    )
    replies = [post(worker, "/ingest/mlflow", delivery) for _ in range(3)]
    assert [r.status for r in replies] == [202, 200, 200], [r.body for r in replies]
    event_id = replies[0].json["event_id"]
    [event] = records_of(settings, settings.registry_events_topic, event_id)
    assert event["artifact"]["version"] == 4
    [job] = records_of(settings, settings.webhook_topic, event_id)
    assert job["automation_id"] == "mlflow-champion"
    assert (
        job["action"]["payload"]
        == '{"model": "mlflow/wandb-registry-mlflow/fraud:v4", "alias": "champion"}'
    )


def test_mlflow_forged_delivery_is_401_and_publishes_nothing(
    worker: WorkerProcess, settings: Settings
) -> None:
    """Signed with another secret: 401, and no event for its delivery id."""
    delivery = mlflow_delivery(
        "model_version_alias.created",
        {"name": "fraud", "alias": "champion", "version": "5"},
        "not-the-secret",
    )
    reply = post(worker, "/ingest/mlflow", delivery)
    assert reply.status == 401
    event_id = f"mlflow-{delivery.headers['X-MLflow-Delivery-Id']}"
    records = consume(settings, settings.registry_events_topic, expect=0, settle=1.0)
    assert all(value.get("event_id") != event_id for _, value in records)


def test_wandb_signed_delivery_becomes_one_job_however_often_delivered(
    worker: WorkerProcess, settings: Settings
) -> None:
    """A W&B automation's webhook (the documented template, X-Wandb-Signature), twice:
    one event, one job."""
    delivery = wandb_delivery(
        wandb_payload(
            artifact_collection_name="wandb-src",
            artifact_version_string="acme/wandb-registry-model/wandb-src:v2",
        ),
        WANDB_SECRET,
    )
    first = post(worker, "/ingest/wandb", delivery)
    second = post(worker, "/ingest/wandb", delivery)
    assert (first.status, second.status) == (202, 200), (first.body, second.body)
    event_id = first.json["event_id"]
    [job] = records_of(settings, settings.webhook_topic, event_id)
    assert job["automation_id"] == "acme-production"
    assert "acme/wandb-registry-model/wandb-src:v2" in job["action"]["payload"]
    assert len(records_of(settings, settings.registry_events_topic, event_id)) == 1


def test_producer_library_event_becomes_a_job(worker: WorkerProcess, settings: Settings) -> None:
    """Producer.add_alias: the event lands on registry-events keyed by collection path and
    the worker turns it into a job."""
    with Producer(settings, entity="acme", registry="model", author="registry-service") as p:
        sent = p.add_alias("producer-src", 7, "production")
    assert sent.event_id is not None
    assert sent.topic == settings.registry_events_topic
    records = consume(settings, settings.registry_events_topic, expect=0, settle=1.0)
    keys = [key for key, value in records if value.get("event_id") == sent.event_id]
    assert keys == [b"acme/wandb-registry-model/producer-src"]
    [job] = records_of(settings, settings.webhook_topic, sent.event_id)
    assert job["automation_id"] == "acme-production"
    assert "producer-src:v7" in job["action"]["payload"]


def test_cloudevent_records_in_binary_and_structured_mode_become_jobs(
    worker: WorkerProcess, settings: Settings
) -> None:
    """Records the `cloudevents` package builds (ce_ headers; application/cloudevents+json)
    on registry-events: the worker reads the event in the data and emits its job."""
    from cloudevents.core.bindings import kafka
    from cloudevents.core.v1.event import CloudEvent

    from app.kafka.clients import producer

    messages = []
    for mode in ("binary", "structured"):
        data = event_dict(artifact={"collection": f"ce-{mode}"})
        del data["event_id"]
        cloud = CloudEvent(
            attributes={
                "type": "com.example.registry.ADD_ARTIFACT_ALIAS",
                "source": "/registry",
                "id": f"ce-{mode}-{uuid.uuid4().hex[:6]}",
                "datacontenttype": "application/json",
            },
            data=data,
        )
        make = kafka.to_binary_event if mode == "binary" else kafka.to_structured_event
        messages.append((cloud.get_id(), make(cloud)))

    async def send() -> None:
        async with producer(settings.kafka_bootstrap_servers) as prod:
            for _, message in messages:
                await prod.send_and_wait(
                    settings.registry_events_topic,
                    message.value,
                    key=b"acme/wandb-registry-model/ce",
                    headers=list(message.headers.items()),
                )

    asyncio.run(send())
    for event_id, _ in messages:
        [job] = records_of(settings, settings.webhook_topic, event_id)
        assert job["automation_id"] == "acme-production"
        assert job["event"]["event_id"] == event_id


def test_automation_asking_for_cloudevents_gets_jobs_with_ce_headers(
    worker: WorkerProcess, settings: Settings
) -> None:
    """job_format cloudevents: the job on actions.webhook carries ce_ headers that the
    `cloudevents` package reads as a CloudEvent whose id is the job id."""
    from cloudevents.core.bindings import kafka

    _, event_id = published_alias(worker, "ce-alias", "6")
    [job] = records_of(settings, settings.webhook_topic, event_id)
    with TopicReader(settings.kafka_bootstrap_servers, [settings.webhook_topic]) as reader:
        assert reader.wait(
            lambda r: any(x.json().get("event_id") == event_id for x in r.records()), 30
        )
        [record] = [x for x in reader.records() if x.json().get("event_id") == event_id]
    message = kafka.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value or b""
    )
    cloud = kafka.from_binary_event(message)
    assert cloud.get_id() == job["job_id"]
    assert cloud.get_type() == "io.hookstream.job.webhook"
    assert cloud.get_subject() == event_id


def test_producer_run_state_becomes_a_job_of_a_run_automation(
    worker: WorkerProcess, settings: Settings
) -> None:
    """Producer.set_run_state: a RUN_STATE record on run-events keyed by run path, and the
    worker's run automation (state FINISHED) emits its job."""
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    with Producer(settings, entity="acme", project="mnist") as p:
        sent = p.set_run_state(run_id, "finished", run={"name": "bright-sun-1"})
    assert sent.topic == settings.run_events_topic

    def mine() -> dict[str, Any] | None:
        jobs = consume(settings, settings.webhook_topic, expect=0, settle=0.5)
        return next(
            (v for _, v in jobs if v.get("event", {}).get("run", {}).get("id") == run_id), None
        )

    job = eventually(mine, timeout=30)
    assert job["automation_id"] == "run-ended"
    assert job["event_type"] == "RUN_STATE"


def published_alias(worker: WorkerProcess, alias: str, version: str) -> tuple[Delivery, str]:
    """An MLflow-signed model_version_alias.created of `fraud`, posted: 202; its event id."""
    delivery = mlflow_delivery(
        "model_version_alias.created",
        {"name": "fraud", "alias": alias, "version": version},
        MLFLOW_SECRET,
    )
    reply = post(worker, "/ingest/mlflow", delivery)
    assert reply.status == 202, reply.body
    return delivery, str(reply.json["event_id"])


def post_settled(worker: WorkerProcess, path: str, delivery: Delivery) -> Reply:
    """POST as a sender retrying a 503 (partitions being assigned) does, up to a minute."""

    def answered() -> Reply | None:
        reply = post(worker, path, delivery)
        if reply.status == 503:
            assert "retry" in reply.json["error"], reply.body
            return None
        return reply

    return eventually(answered, timeout=60)


def one_event_and_one_job(settings: Settings, event_id: str) -> None:
    """The delivery is one record on registry-events and one job on actions.webhook."""
    assert len(records_of(settings, settings.registry_events_topic, event_id)) == 1
    assert len(records_of(settings, settings.webhook_topic, event_id)) == 1


def test_a_retry_reaching_another_worker_publishes_nothing_new(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """A second worker of the group takes the retry: it is decided by the worker owning
    the event's partition (forwarded there, or the second worker took the partition
    over with the ingest-deliveries table restored): 200 duplicate, and the delivery
    stays one event record and one job."""
    delivery, event_id = published_alias(worker, "champion", "8")
    other = WorkerProcess(settings, tmp_path / "other.log", web_port=free_port())
    try:
        other.start()
        second = post_settled(other, "/ingest/mlflow", delivery)
        assert second.status == 200, second.body
        assert second.json == {"published": False, "duplicate": True, "event_id": event_id}
        third = post_settled(worker, "/ingest/mlflow", delivery)
        assert third.json.get("duplicate") is True, third.body
    finally:
        other.stop()
    worker.wait_ready()
    one_event_and_one_job(settings, event_id)


def test_a_retry_after_a_restart_publishes_nothing_new(
    worker: WorkerProcess, settings: Settings
) -> None:
    """The worker is stopped and started again (same store dir): its memory is gone, the
    ingest-deliveries table is not, so MLflow's retry answers 200 duplicate and the
    delivery stays one event record and one job."""
    delivery, event_id = published_alias(worker, "champion", "9")
    worker.stop()
    worker.start()
    retry = post_settled(worker, "/ingest/mlflow", delivery)
    assert retry.status == 200, retry.body
    assert retry.json == {"published": False, "duplicate": True, "event_id": event_id}
    one_event_and_one_job(settings, event_id)


def test_a_copy_written_by_a_producer_retry_makes_no_second_job(
    worker: WorkerProcess, settings: Settings
) -> None:
    """Two records on registry-events carrying the same `hookstream-delivery` header (a
    race between workers, or a producer retrying on its own): the worker makes the job
    of the first only and counts the second in hookstream_repeated_deliveries_dropped_total."""
    from app.core.deliveries import DELIVERY_HEADER
    from app.kafka.clients import producer

    event_id = f"retried-{uuid.uuid4().hex[:8]}"
    value = dumps(event_dict(event_id=event_id))

    async def send_twice() -> None:
        async with producer(settings.kafka_bootstrap_servers) as prod:
            for _ in range(2):
                await prod.send_and_wait(
                    settings.registry_events_topic,
                    value,
                    key=b"acme/wandb-registry-model/mnist-classifier",
                    headers=[(DELIVERY_HEADER, event_id.encode())],
                )

    asyncio.run(send_twice())
    assert len(records_of(settings, settings.registry_events_topic, event_id)) == 2
    [job] = records_of(settings, settings.webhook_topic, event_id)
    assert job["automation_id"] == "acme-production"

    def dropped() -> bool:
        metrics = worker.get("/metrics").decode()
        return any(
            line.startswith("hookstream_repeated_deliveries_dropped_total{")
            and settings.registry_events_topic in line
            and not line.endswith(" 0.0")
            for line in metrics.splitlines()
        )

    assert eventually(dropped, timeout=10)
