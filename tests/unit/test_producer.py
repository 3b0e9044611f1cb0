"""The producer library without a broker: events it builds, refusals before any send."""

from __future__ import annotations

import pytest

from app.contract.events import EventType
from app.errors import InvalidEventError
from app.producer import AsyncProducer, Producer
from app.producer.events import (
    Place,
    build_event,
    build_run_record,
    parse_version_path,
    validated,
    validated_run,
)
from app.settings import Settings

# Nothing may reach a broker here: a refused event must fail before connecting.
NOWHERE = Settings(kafka_bootstrap_servers="127.0.0.1:9")
LIMIT = 1024 * 1024


def test_registry_defaults_give_wandbs_registry_project_and_a_valid_event() -> None:
    """entity + registry fill the event; the project is `wandb-registry-<registry>`."""
    obj = build_event(
        EventType.ADD_ARTIFACT_ALIAS,
        Place(entity="acme", registry="model", author="ci"),
        "fraud",
        3,
        alias="production",
        aliases=["production"],
    )
    event, raw = validated(obj, LIMIT)
    assert event.project == "wandb-registry-model"
    assert event.collection_path == "acme/wandb-registry-model/fraud"
    assert (event.alias, event.author, event.artifact.version) == ("production", "ci", 3)
    assert raw.startswith(b"{")


def test_keyword_arguments_override_the_defaults() -> None:
    """A call may name its own entity and project (a project event: no registry)."""
    obj = build_event(
        EventType.CREATE_ARTIFACT,
        Place(entity="acme", registry="model"),
        "mnist",
        0,
        entity="other",
        project="vision",
        registry=None,
    )
    event, _ = validated(obj, LIMIT)
    assert (event.entity, event.project, event.registry) == ("other", "vision", None)


def test_link_source_is_parsed_from_wandbs_artifact_path() -> None:
    """`entity/project/collection:vN` becomes the contract's source; a bad path is refused."""
    assert parse_version_path("acme/train/fraud:v12") == {
        "entity": "acme",
        "project": "train",
        "collection": "fraud",
        "version": 12,
    }
    with pytest.raises(ValueError, match="entity/project/collection:vN"):
        parse_version_path("acme/fraud")


def test_given_event_id_is_kept_so_a_retry_is_idempotent() -> None:
    """An event id passed in is the event's: re-publishing it gives the same job ids."""
    obj = build_event(
        EventType.ADD_ARTIFACT_TAG, Place(entity="a", project="p"), "c", 1, tag="t", event_id="e-7"
    )
    assert obj["event_id"] == "e-7"


async def test_invalid_event_is_refused_naming_the_field_before_connecting() -> None:
    """No entity: InvalidEventError names it, and the producer never connected."""
    producer = AsyncProducer(NOWHERE, registry="model")
    with pytest.raises(InvalidEventError, match="entity"):
        await producer.add_alias("fraud", 3, "production")
    with pytest.raises(InvalidEventError, match=r"artifact\.version"):
        await producer.create_artifact("fraud", -1, entity="acme")
    assert producer._producer is None


def test_sync_producer_refuses_the_same_way() -> None:
    """The blocking producer validates first too, and closes cleanly unconnected."""
    producer = Producer(NOWHERE, entity="acme", project="p")
    try:
        with pytest.raises(InvalidEventError, match="tag"):
            producer.publish(
                build_event(EventType.ADD_ARTIFACT_TAG, Place(entity="acme", project="p"), "c", 1)
            )
    finally:
        producer.close()


async def test_run_records_are_built_and_refused_like_run_events() -> None:
    """log_metrics and set_run_state build contract run records; a metric that is not a
    number, or an unknown state, is refused before connecting."""
    record = build_run_record(
        "RUN_METRIC", Place(entity="acme", project="mnist"), "run-1", metrics={"loss": 0.3},
        step=4, run={"name": "bright-sun-1"},
    )  # fmt: skip
    parsed, _ = validated_run(record, LIMIT)
    assert parsed.run_path == "acme/mnist/run-1"
    assert parsed.run.name == "bright-sun-1"
    producer = AsyncProducer(NOWHERE, entity="acme", project="mnist")
    with pytest.raises(InvalidEventError, match="metrics"):
        await producer.log_metrics("run-1", {"loss": "low"}, 1)  # type: ignore[dict-item]
    with pytest.raises(InvalidEventError, match="state"):
        await producer.set_run_state("run-1", "paused")
    assert producer._producer is None
