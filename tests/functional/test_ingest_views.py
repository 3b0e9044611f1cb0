"""POST /ingest/mlflow and /ingest/wandb on a real Faust web app (aiohttp test client).

The rig is test_api_views' (real views, RecordingWrites standing in for Kafka). MLflow's
deliveries are built and signed by MLflow's own code (tests.webhook_senders).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.serialization import dumps, loads
from tests.factories import event_dict
from tests.functional.test_api_views import Rig
from tests.webhook_senders import mlflow_delivery, wandb_delivery, wandb_payload

MLFLOW_SECRET = "mlflow-ingest-secret"
WANDB_SECRET = "wandb-ingest-secret"
ALIAS = {"name": "fraud", "alias": "champion", "version": "3"}


@pytest.fixture
def rig() -> Rig:
    return Rig(
        ingest_mlflow_secret=MLFLOW_SECRET,
        ingest_wandb_secret=WANDB_SECRET,
        api_token="a-token-ingest-does-not-need",
    )


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(rig.app.web.web_app)) as test_client:
        yield test_client


async def test_mlflow_delivery_is_published_to_registry_events_keyed_by_collection(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """202; one record on registry-events, keyed entity/project/collection, an
    ADD_ARTIFACT_ALIAS whose event id comes from the delivery id. No bearer token needed."""
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, MLFLOW_SECRET)
    response = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert body["published"] is True
    [write] = rig.writes.writes
    assert write.topic == rig.settings.registry_events_topic
    assert write.key == b"mlflow/wandb-registry-mlflow/fraud"
    assert write.value is not None
    event = loads(write.value)
    assert event["event_type"] == "ADD_ARTIFACT_ALIAS"
    assert event["artifact"]["version"] == 3
    assert event["event_id"] == f"mlflow-{delivery.headers['X-MLflow-Delivery-Id']}"


async def test_mlflow_retry_with_the_same_delivery_id_publishes_nothing_new(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """MLflow retries the very same request: the second answer is 200 duplicate, one write."""
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, MLFLOW_SECRET)
    first = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    second = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert first.status == 202
    assert second.status == 200
    assert (await second.json())["duplicate"] is True
    assert len(rig.writes.writes) == 1


async def test_mlflow_retry_after_kafka_failed_publishes(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """A 503 (Kafka down) releases the delivery id: MLflow's retry then publishes it."""
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, MLFLOW_SECRET)
    rig.writes.fail = ConnectionError("broker unreachable")
    failed = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert failed.status == 503
    rig.writes.fail = None
    retried = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert retried.status == 202
    assert len(rig.writes.writes) == 1


@pytest.mark.parametrize("tamper", ["signature", "secret", "timestamp", "unsigned"])
async def test_mlflow_bad_signature_or_stale_timestamp_is_401_and_publishes_nothing(
    rig: Rig, client: TestClient[Any, Any], tamper: str
) -> None:
    """A forged, wrongly keyed, replayed-late or unsigned delivery: 401 with the reason."""
    secret = "not-the-secret" if tamper == "secret" else MLFLOW_SECRET
    delivery = mlflow_delivery("model_version_alias.created", ALIAS, secret)
    headers = dict(delivery.headers)
    if tamper == "signature":
        headers["X-MLflow-Signature"] = "v1,AAAA"
    elif tamper == "timestamp":
        headers["X-MLflow-Timestamp"] = str(int(headers["X-MLflow-Timestamp"]) - 600)
    elif tamper == "unsigned":
        del headers["X-MLflow-Signature"]
    response = await client.post("/ingest/mlflow", data=delivery.body, headers=headers)
    assert response.status == 401, await response.text()
    assert "not authentic" in (await response.json())["error"]
    assert rig.writes.writes == []


async def test_mlflow_registered_model_created_is_acknowledged_without_an_event(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """200 `ignored` (MLflow does not retry a 2xx), and nothing written."""
    delivery = mlflow_delivery(
        "registered_model.created",
        {"name": "fraud", "tags": {}, "description": None},
        MLFLOW_SECRET,
    )
    response = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
    assert response.status == 200
    assert "registered_model.created" in (await response.json())["ignored"]
    assert rig.writes.writes == []


async def test_endpoint_without_its_secret_is_401() -> None:
    """No ingest secret configured: every delivery is refused, saying which setting."""
    rig = Rig()
    async with TestClient(TestServer(rig.app.web.web_app)) as client:
        delivery = mlflow_delivery("model_version_alias.created", ALIAS, MLFLOW_SECRET)
        response = await client.post("/ingest/mlflow", data=delivery.body, headers=delivery.headers)
        assert response.status == 401
        assert "HOOKSTREAM_INGEST_MLFLOW_SECRET" in (await response.json())["error"]
        wandb = wandb_delivery(wandb_payload(), WANDB_SECRET)
        response = await client.post("/ingest/wandb", data=wandb.body, headers=wandb.headers)
        assert response.status == 401
    assert rig.writes.writes == []


async def test_wandb_delivery_is_published_and_a_repeat_is_not(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """202 then 200 duplicate for the same signed body; one record on registry-events."""
    delivery = wandb_delivery(wandb_payload(), WANDB_SECRET)
    first = await client.post("/ingest/wandb", data=delivery.body, headers=delivery.headers)
    assert first.status == 202, await first.text()
    second = await client.post("/ingest/wandb", data=delivery.body, headers=delivery.headers)
    assert (await second.json())["duplicate"] is True
    [write] = rig.writes.writes
    assert write.key == b"acme/wandb-registry-model/mnist-classifier"
    assert write.value is not None
    assert loads(write.value)["alias"] == "production"


async def test_wandb_bad_signature_is_401(rig: Rig, client: TestClient[Any, Any]) -> None:
    """A body signed with another secret, or not signed, is refused."""
    delivery = wandb_delivery(wandb_payload(), "someone-else")
    response = await client.post("/ingest/wandb", data=delivery.body, headers=delivery.headers)
    assert response.status == 401
    unsigned = await client.post("/ingest/wandb", data=delivery.body)
    assert unsigned.status == 401
    assert rig.writes.writes == []


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b"[1]", 400, "not a JSON object"),
        (b"", 400, "empty"),
        (dumps({"artifact_version_string": "a/b/c:v1"}), 422, "event_type"),
        (dumps(wandb_payload(event_type="DROP_TABLE")), 422, "DROP_TABLE"),
        (dumps(wandb_payload(artifact_version_string="x")), 422, "artifact_version_string"),
    ],
)
async def test_signed_but_unmappable_wandb_bodies_are_4xx_with_a_reason(
    rig: Rig, client: TestClient[Any, Any], payload: bytes, status: int, needle: str
) -> None:
    """Authentic but not an event: 400 or 422 with the reason, never 500, nothing written."""
    from app.core.signatures import sign_wandb

    headers = {"X-Wandb-Signature": sign_wandb(WANDB_SECRET, payload)}
    response = await client.post("/ingest/wandb", data=payload, headers=headers)
    assert response.status == status, await response.text()
    assert needle in (await response.json())["error"]
    assert rig.writes.writes == []


async def test_ingest_body_over_the_event_limit_is_413(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """max_event_bytes bounds webhook ingest as it bounds POST /events."""
    big = b"x" * (rig.settings.max_event_bytes + 1)
    for path in ("/ingest/mlflow", "/ingest/wandb"):
        response = await client.post(path, data=big)
        assert response.status == 413, path
    assert rig.writes.writes == []


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_post_events_takes_a_cloudevent_in_either_mode(
    rig: Rig, client: TestClient[Any, Any], mode: str
) -> None:
    """A CloudEvent built by the `cloudevents` package: Kafka gets the plain event, its
    id from the CloudEvent's `id`."""
    from cloudevents.core.bindings import http
    from cloudevents.core.v1.event import CloudEvent

    data = event_dict()
    del data["event_id"]
    cloud = CloudEvent(
        attributes={"type": "com.example.ADD_ARTIFACT_ALIAS", "source": "/r", "id": "ce-9"},
        data=data,
    )
    make = http.to_binary_event if mode == "binary" else http.to_structured_event
    message = make(cloud)
    response = await client.post(
        "/events",
        data=message.body,
        headers={**message.headers, "Authorization": "Bearer a-token-ingest-does-not-need"},
    )
    assert response.status == 202, await response.text()
    [write] = rig.writes.writes
    assert write.value is not None
    event = loads(write.value)
    assert event["event_id"] == "ce-9"
    assert "specversion" not in event


async def test_post_events_malformed_cloudevent_is_422(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """ce- headers without the required attributes: 422 with the reason, nothing written."""
    response = await client.post(
        "/events",
        data=dumps(event_dict()),
        headers={"ce-specversion": "1.0", "Authorization": "Bearer a-token-ingest-does-not-need"},
    )
    assert response.status == 422, await response.text()
    assert "not a CloudEvent" in (await response.json())["error"]
    assert rig.writes.writes == []
