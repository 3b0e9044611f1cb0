"""MLflow 3 and W&B deliveries as events: signatures (MLflow's own signing), mapping, repeats."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from app.contract.events import EventType
from app.core.ingest import RecentDeliveries, mlflow_event, mlflow_event_id, wandb_event
from app.core.signatures import verify_mlflow
from app.errors import InvalidEventError, SignatureVerificationError
from app.serialization import dumps, loads
from tests.webhook_senders import mlflow_delivery, wandb_payload

SECRET = "mlflow-secret"
RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMIT = 1024 * 1024


def _map(event: str, data: dict[str, Any], delivery_id: str = "d-1") -> Any:
    delivery = mlflow_delivery(event, data, SECRET)
    return mlflow_event(
        delivery.body,
        delivery_id,
        received_at=RECEIVED,
        entity="mlflow",
        registry="models",
        max_bytes=LIMIT,
    )


def test_verify_mlflow_accepts_what_mlflow_signed_and_returns_the_delivery_id() -> None:
    """A delivery signed by MLflow's `_generate_hmac_signature` verifies."""
    delivery = mlflow_delivery(
        "model_version_alias.created", {"name": "m", "alias": "a", "version": "1"}, SECRET
    )
    got = verify_mlflow(SECRET, delivery.headers, delivery.body)
    assert got == delivery.headers["X-MLflow-Delivery-Id"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("secret", "no matching signature"),
        ("body", "no matching signature"),
        ("delivery", "no matching signature"),
        ("stale", "too old"),
        ("future", "too new"),
        ("missing", "missing"),
    ],
)
def test_verify_mlflow_refuses_a_wrong_secret_body_id_or_timestamp(
    change: str, needle: str
) -> None:
    """Each part of `delivery_id.timestamp.payload` is signed; 5 minutes of skew at most."""
    delivery = mlflow_delivery(
        "model_version_alias.created", {"name": "m", "alias": "a", "version": "1"}, SECRET
    )
    headers = dict(delivery.headers)
    body = delivery.body
    secret = SECRET
    now = time.time()
    if change == "secret":
        secret = "another"
    elif change == "body":
        body = body.replace(b'"a"', b'"b"')
    elif change == "delivery":
        headers["X-MLflow-Delivery-Id"] = "someone-else"
    elif change == "stale":
        now += 301
    elif change == "future":
        now -= 301
    else:
        del headers["X-MLflow-Signature"]
    with pytest.raises(SignatureVerificationError, match=needle):
        verify_mlflow(secret, headers, body, now=now)


def test_alias_created_is_add_artifact_alias_with_a_number_version_and_the_registry() -> None:
    """model_version_alias.created -> ADD_ARTIFACT_ALIAS; "3" becomes 3; registry set."""
    mapped = _map(
        "model_version_alias.created", {"name": "fraud", "alias": "champion", "version": "3"}
    )
    event = mapped.event
    assert event is not None
    assert event.event_type is EventType.ADD_ARTIFACT_ALIAS
    assert event.artifact.version == 3
    assert event.alias == "champion"
    assert event.registry == "models"
    assert event.project == "wandb-registry-models"
    assert event.collection_path == "mlflow/wandb-registry-models/fraud"
    assert event.event_id == mlflow_event_id("d-1") == "mlflow-d-1"
    assert loads(mapped.raw)["mlflow"]["event"] == "model_version_alias.created"


def test_alias_deleted_without_a_version_is_remove_artifact_alias_version_0() -> None:
    """MLflow names no version when an alias is deleted: 0, the pointer knows the rest."""
    event = _map("model_version_alias.deleted", {"name": "fraud", "alias": "champion"}).event
    assert event is not None
    assert event.event_type is EventType.REMOVE_ARTIFACT_ALIAS
    assert (event.alias, event.artifact.version) == ("champion", 0)


def test_tag_set_and_deleted_are_the_tag_events_keyed_by_the_tag_key() -> None:
    """The tag is MLflow's key; a set tag's value rides in artifact.metadata.mlflow_tags."""
    set_ = _map(
        "model_version_tag.set", {"name": "fraud", "version": "2", "key": "stage", "value": "qa"}
    ).event
    assert set_ is not None
    assert set_.event_type is EventType.ADD_ARTIFACT_TAG
    assert (set_.tag, set_.artifact.tags) == ("stage", ["stage"])
    assert set_.artifact.metadata["mlflow_tags"] == {"stage": "qa"}
    deleted = _map("model_version_tag.deleted", {"name": "fraud", "version": "2", "key": "stage"})
    assert deleted.event is not None
    assert deleted.event.event_type is EventType.REMOVE_ARTIFACT_TAG
    assert deleted.event.tag == "stage"


def test_model_version_created_is_create_artifact_with_source_and_run() -> None:
    """A new model version is CREATE_ARTIFACT in the registry, MLflow's fields in metadata."""
    data = {
        "name": "fraud",
        "version": "7",
        "source": "models:/m-1",
        "run_id": "r1",
        "tags": {"team": "risk"},
        "description": None,
    }
    event = _map("model_version.created", data).event
    assert event is not None
    assert event.event_type is EventType.CREATE_ARTIFACT
    assert event.artifact.version == 7
    assert event.artifact.tags == ["team"]
    assert event.artifact.metadata["source"] == "models:/m-1"
    assert event.artifact.metadata["run_id"] == "r1"


def test_registered_model_created_publishes_nothing_and_says_why() -> None:
    """A model without versions has no Hookstream event: acknowledged, not published."""
    mapped = _map("registered_model.created", {"name": "fraud", "tags": {}, "description": ""})
    assert mapped.event is None
    assert mapped.ignored is not None
    assert "registered_model.created" in mapped.ignored


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (b"[]", "not_object", "not a JSON object"),
        (b"{", "not_json", "not valid JSON"),
        (
            dumps({"entity": "run", "action": "deleted", "data": {}}),
            "unknown_event_type",
            "run.deleted",
        ),
        (
            dumps(
                {
                    "entity": "model_version_alias",
                    "action": "created",
                    "data": {"name": "m", "version": "1"},
                }
            ),
            "missing_field",
            "data.alias",
        ),
        (
            dumps(
                {
                    "entity": "model_version_alias",
                    "action": "created",
                    "data": {"name": "m", "alias": "a", "version": "latest"},
                }
            ),
            "invalid_field",
            "data.version",
        ),
        (
            dumps({"entity": "model_version_alias", "action": "created", "data": "x"}),
            "invalid_field",
            "data",
        ),
    ],
)
def test_deliveries_that_do_not_map_are_refused_with_a_code_and_a_path(
    body: bytes, code: str, needle: str
) -> None:
    """Not JSON, an unknown event, a missing alias, a version that is no number: refused."""
    with pytest.raises(InvalidEventError) as caught:
        mlflow_event(
            body, "d", received_at=RECEIVED, entity="mlflow", registry="models", max_bytes=LIMIT
        )
    assert caught.value.code == code
    assert needle in caught.value.reason


def test_wandb_payload_maps_to_an_event_in_its_registry() -> None:
    """The documented template's fields: registry from `wandb-registry-<name>`, version from
    artifact_version_string, an empty `tag` is no tag."""
    mapped = wandb_event(dumps(wandb_payload()), received_at=RECEIVED, max_bytes=LIMIT, bucket=1)
    event = mapped.event
    assert event is not None
    assert event.event_type is EventType.ADD_ARTIFACT_ALIAS
    assert (event.entity, event.registry, event.artifact.collection) == (
        "acme",
        "model",
        "mnist-classifier",
    )
    assert (event.artifact.version, event.alias, event.tag, event.author) == (
        3,
        "production",
        None,
        "alice",
    )


def test_wandb_link_model_is_link_artifact_and_project_events_have_no_registry() -> None:
    """LINK_MODEL reads as LINK_ARTIFACT (with a source); a project artifact has no registry."""
    link = wandb_event(
        dumps(wandb_payload(event_type="LINK_MODEL", alias="")),
        received_at=RECEIVED,
        max_bytes=LIMIT,
        bucket=1,
    ).event
    assert link is not None
    assert link.event_type is EventType.LINK_ARTIFACT
    assert link.source is not None
    assert link.source.version == 3
    project = wandb_event(
        dumps(
            wandb_payload(
                event_type="CREATE_ARTIFACT",
                project_name="vision",
                artifact_version_string="acme/vision/mnist:v0",
                alias="",
            )
        ),
        received_at=RECEIVED,
        max_bytes=LIMIT,
        bucket=1,
    ).event
    assert project is not None
    assert project.registry is None
    assert project.artifact.version == 0


def test_wandb_event_id_is_stable_within_a_window_and_differs_across() -> None:
    """W&B sends no delivery id: the body and the window stand for one."""
    body = dumps(wandb_payload())

    def event_id(bucket: int) -> str:
        event = wandb_event(body, received_at=RECEIVED, max_bytes=LIMIT, bucket=bucket).event
        assert event is not None
        return event.event_id

    assert event_id(5) == event_id(5)
    assert event_id(5) != event_id(6)


def test_wandb_version_string_that_is_not_one_is_422_material() -> None:
    """An artifact_version_string without `:vN` is an invalid field."""
    with pytest.raises(InvalidEventError, match="artifact_version_string"):
        wandb_event(
            dumps(wandb_payload(artifact_version_string="acme/model")),
            received_at=RECEIVED,
            max_bytes=LIMIT,
            bucket=1,
        )


def test_recent_deliveries_claims_once_releases_and_forgets_after_the_window() -> None:
    """A repeat within the window is refused; a released or expired key is new again."""
    recent = RecentDeliveries(seconds=10, max_keys=3)
    assert recent.claim("a", 0.0)
    assert not recent.claim("a", 5.0)
    recent.release("a")
    assert recent.claim("a", 6.0)
    assert recent.claim("a", 17.0)  # past the window
    for key in ("b", "c", "d"):
        assert recent.claim(key, 18.0)
    assert len(recent._seen) <= 3  # bounded: the oldest went first
