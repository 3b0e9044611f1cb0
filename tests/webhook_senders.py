"""Webhook deliveries as the platforms build them: MLflow 3's own code signs its bodies.

`mlflow_delivery` runs MLflow's `_send_webhook_request` (envelope, headers, signature)
against a session that records the request instead of sending it; only MLflow's URL
check is bypassed, because it resolves the host name (and refuses plain http by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from unittest import mock

from app.core.signatures import WANDB_SIGNATURE_HEADER, sign_wandb
from app.serialization import dumps

__all__ = ["Delivery", "mlflow_delivery", "wandb_delivery", "wandb_payload"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed request: its body and headers."""

    body: bytes
    headers: dict[str, str]


class _Recorder:
    """The requests.Session MLflow posts with; keeps the request."""

    def __init__(self) -> None:
        self.delivery: Delivery | None = None

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Any:
        """Record what MLflow would send."""
        self.delivery = Delivery(bytes(data), dict(headers))
        return mock.Mock(status_code=200)


def mlflow_delivery(event: str, data: dict[str, Any], secret: str) -> Delivery:
    """The request MLflow 3 sends for `event` (`model_version_alias.created` ...)."""
    from mlflow.entities.webhook import Webhook, WebhookEvent
    from mlflow.webhooks import delivery

    webhook_event = WebhookEvent.from_str(event)  # type: ignore[arg-type]
    webhook = Webhook(
        webhook_id="wh-1",
        name="hookstream",
        url="https://hookstream.example/ingest/mlflow",
        events=[webhook_event],
        creation_timestamp=0,
        last_updated_timestamp=0,
        secret=secret,
    )
    recorder = _Recorder()
    with mock.patch.object(delivery, "_validate_webhook_url"):
        delivery._send_webhook_request(webhook, data, webhook_event, recorder)  # type: ignore[arg-type]
    assert recorder.delivery is not None
    return recorder.delivery


def wandb_payload(**overrides: Any) -> dict[str, Any]:
    """What W&B renders from the payload template of docs/contract.md (an alias added)."""
    payload: dict[str, Any] = {
        "event_type": "ADD_ARTIFACT_ALIAS",
        "event_author": "alice",
        "entity_name": "acme",
        "project_name": "wandb-registry-model",
        "artifact_collection_name": "mnist-classifier",
        "artifact_version_string": "acme/wandb-registry-model/mnist-classifier:v3",
        "alias": "production",
        "tag": "",
    }
    payload.update(overrides)
    return payload


def wandb_delivery(payload: dict[str, Any], secret: str) -> Delivery:
    """A W&B webhook request: the rendered payload as compact JSON, X-Wandb-Signature."""
    body = dumps(payload)
    return Delivery(
        body,
        {"Content-Type": "application/json", WANDB_SIGNATURE_HEADER: sign_wandb(secret, body)},
    )
