"""The new artifact events end to end: a real worker and broker turn each into its job.

One worker serves the module: the automations (written as the W&B SDK serializes them:
wrapped filters, a filter as JSON text, entity scopes, a notification without a title,
a webhook without a payload) are applied first, then every event is published once;
each test reads the jobs of its own event type from the action topics.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.contract.automations import DEFAULT_NOTIFICATION_TITLE, parse_automation
from app.kafka.automations import apply_automations
from app.serialization import loads
from app.settings import Settings
from tests.factories import automation_dict, event_dict
from tests.integration.harness import WorkerProcess, consume, publish
from tests.support import module_settings

SOURCE = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 9}
REGISTRY = {"type": "registry", "entity": "acme", "registry": "model"}

AUTOMATIONS = [
    {
        "id": "unlinked-production",
        "event": "UNLINK_ARTIFACT",
        "scope": {"type": "entity", "entity": "acme"},
        "filter": '{"$or":[{"$and":[{"alias":{"$eq":"production"}}]}]}',
        "action": {
            "type": "queue_job",
            "queue": "cleanup",
            "job": "acme/ops/cleanup:latest",
            "config": {"model": "${artifact_version_string}", "by": "${event_author}"},
        },
    },
    {
        "id": "tagged-candidate",
        "event": "ADD_ARTIFACT_TAG",
        "scope": {"type": "entity", "entity": "acme"},
        "filter": {"$or": [{"$and": [{"tag": {"$eq": "candidate"}}]}]},
        "action": {"type": "notification", "channel": "SLACK_ML", "message": "${tag}"},
    },
    {
        "id": "untagged",
        "event": "REMOVE_ARTIFACT_TAG",
        "scope": REGISTRY,
        "action": {"type": "webhook", "url": "https://audit.example.com/tags"},
    },
    {
        "id": "production-removed",
        "event": "REMOVE_ARTIFACT_ALIAS",
        "scope": REGISTRY,
        "filter": {"alias": "production"},
        "action": {
            "type": "webhook",
            "url": "https://ci.example.com/rollback",
            "payload": '{"alias": "${alias}", "was": "${previous_version}"}',
        },
    },
]


def registry(**overrides: Any) -> dict[str, Any]:
    """A registry event of acme's model registry (mnist-classifier)."""
    return event_dict(**{"alias": None, **overrides})


def project(**overrides: Any) -> dict[str, Any]:
    """A project event of acme/vision (mnist-dataset)."""
    artifact = {"collection": "mnist-dataset", "type": "dataset", **overrides.pop("artifact", {})}
    return event_dict(
        **{"project": "vision", "registry": None, "alias": None, "artifact": artifact, **overrides}
    )


EVENTS = [
    registry(event_id="add-prod", event_type="ADD_ARTIFACT_ALIAS", alias="production",
             artifact={"version": 2}),
    registry(event_id="remove-prod", event_type="REMOVE_ARTIFACT_ALIAS", alias="production",
             artifact={"version": 2, "aliases": ["latest"]}),
    registry(event_id="remove-staging", event_type="REMOVE_ARTIFACT_ALIAS", alias="staging"),
    registry(event_id="unlink-prod", event_type="UNLINK_ARTIFACT", source=SOURCE,
             artifact={"version": 5, "aliases": ["production"]}),
    registry(event_id="unlink-other-entity", event_type="UNLINK_ARTIFACT", source=SOURCE,
             entity="globex", artifact={"aliases": ["production"]}),
    project(event_id="tag-candidate", event_type="ADD_ARTIFACT_TAG", tag="candidate"),
    project(event_id="tag-baseline", event_type="ADD_ARTIFACT_TAG", tag="baseline"),
    registry(event_id="tag-candidate-registry", event_type="ADD_ARTIFACT_TAG", tag="candidate"),
    registry(event_id="untag-raw", event_type="REMOVE_ARTIFACT_TAG", tag="raw"),
]  # fmt: skip


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """This module's own topics and consumer group."""
    return module_settings(kafka_bootstrap, tmp_path_factory.mktemp("artifact-events"))


@pytest.fixture(scope="module")
def applied(settings: Settings) -> None:
    """The automations, on the automations topic before the worker starts."""
    automations = [
        parse_automation({**automation_dict(), "name": a["id"], **a}) for a in AUTOMATIONS
    ]
    asyncio.run(apply_automations(settings, automations))


@pytest.fixture(scope="module")
def published(applied: None, worker: WorkerProcess, settings: Settings) -> None:
    """Every event, once, on the topic of its kind, after the worker is ready."""
    publish(settings, EVENTS)


def jobs(settings: Settings, topic: str, expect: int) -> dict[str, dict[str, Any]]:
    """The jobs on a topic by event id (waits for `expect`, then a little longer)."""
    records = consume(settings, topic, expect=expect, settle=1.0)
    return {value["event_id"]: value for _, value in records}


def test_remove_artifact_alias_becomes_a_job_with_the_version(
    published: None, settings: Settings
) -> None:
    """REMOVE_ARTIFACT_ALIAS of production: one webhook job, previous_version 2."""
    found = jobs(settings, settings.webhook_topic, expect=2)
    job = found["remove-prod"]
    assert job["automation_id"] == "production-removed"
    assert job["previous_version"] == 2
    assert job["action"]["payload"] == '{"alias": "production", "was": "v2"}'
    assert "remove-staging" not in found


def test_unlink_artifact_fires_the_entity_automation(published: None, settings: Settings) -> None:
    """UNLINK_ARTIFACT of a production version in acme: one queue job; globex's: none."""
    found = jobs(settings, settings.queue_job_topic, expect=1)
    assert set(found) == {"unlink-prod"}
    job = found["unlink-prod"]
    assert job["automation_id"] == "unlinked-production"
    assert job["action"]["config"]["model"] == "acme/wandb-registry-model/mnist-classifier:v5"


def test_add_artifact_tag_renders_the_tag_and_the_default_title(
    published: None, settings: Settings
) -> None:
    """ADD_ARTIFACT_TAG candidate on both event topics: the entity automation sends one
    notification job for each, with ${tag} and the default title; baseline sends none."""
    found = jobs(settings, settings.notification_topic, expect=2)
    assert set(found) == {"tag-candidate", "tag-candidate-registry"}
    action = found["tag-candidate"]["action"]
    assert action["message"] == "candidate"
    assert DEFAULT_NOTIFICATION_TITLE.startswith("${event_type} on ")
    assert action["title"] == "ADD_ARTIFACT_TAG on acme/vision/mnist-dataset:v3"


def test_remove_artifact_tag_sends_the_default_payload(published: None, settings: Settings) -> None:
    """REMOVE_ARTIFACT_TAG: the webhook without a payload sends the default one."""
    found = jobs(settings, settings.webhook_topic, expect=2)
    job = found["untag-raw"]
    assert job["automation_id"] == "untagged"
    payload = loads(job["action"]["payload"])
    assert payload["tag"] == "raw"
    assert payload["event_type"] == "REMOVE_ARTIFACT_TAG"
    assert payload["artifact_version_string"] == "acme/wandb-registry-model/mnist-classifier:v3"
