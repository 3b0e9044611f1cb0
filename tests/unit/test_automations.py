"""Automation validation: fields, scopes, actions, filters and templates refused at load."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contract.automations import (
    ArtifactCollectionScope,
    KafkaAction,
    QueueJobAction,
    WebhookAction,
    parse_automation,
)
from app.contract.events import EventType
from app.contract.jobs import JOB_ID_NAMESPACE, job_id
from app.errors import InvalidAutomationError
from tests.factories import make_automation, merge

BASE: dict[str, Any] = {
    "id": "deploy-on-production",
    "name": "Deploy",
    "event": "ADD_ARTIFACT_ALIAS",
    "scope": {"type": "registry", "entity": "acme", "registry": "model"},
    "action": {"type": "webhook", "url": "https://ci.example.com/x", "payload": "{}"},
}


def errors_of(data: Any) -> dict[str, str]:
    """Field -> reason of the InvalidAutomationError raised for `data`."""
    with pytest.raises(InvalidAutomationError) as info:
        parse_automation(data)
    return dict(info.value.errors)


def with_action(**action: Any) -> dict[str, Any]:
    """BASE with its action replaced."""
    data = dict(BASE)
    data["action"] = action
    return data


def test_contract_example_is_valid() -> None:
    """The contract's own example automation is accepted as written."""
    automation = parse_automation(
        {
            "id": "deploy-on-production",
            "name": "Deploy when production alias is added",
            "description": "optional",
            "enabled": True,
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": {"type": "registry", "entity": "acme", "registry": "model"},
            "filter": {"alias": {"$regex": "^prod"}},
            "action": {
                "type": "webhook",
                "url": "https://ci.example.com/hooks/deploy",
                "payload": '{"model": "${artifact_version_string}", "by": "${event_author}"}',
                "secret": "DEPLOY_HOOK_SECRET",
                "access_token": "DEPLOY_HOOK_TOKEN",
            },
        }
    )
    assert isinstance(automation.action, WebhookAction)
    assert automation.action.secret == "DEPLOY_HOOK_SECRET"
    assert automation.revision == 1
    assert automation.enabled


def test_defaults_and_legacy_event_name() -> None:
    """enabled defaults to true, revision to 1; LINK_MODEL reads as LINK_ARTIFACT."""
    automation = parse_automation({**BASE, "event": "LINK_MODEL"})
    assert automation.event is EventType.LINK_ARTIFACT
    assert automation.enabled is True
    assert automation.revision == 1
    assert automation.filter is None


def test_every_problem_is_reported_at_once() -> None:
    """Several problems give several (field, reason) pairs, each with its path."""
    errors = errors_of(
        {
            "id": "Not A Slug",
            "name": "",
            "event": "RUN_STOPPED",
            "scope": {"type": "registry", "entity": "acme"},
            "filter": {"nope": 1},
            "action": {"type": "webhook", "url": "ftp://x", "payload": '{"a": "${nope}"}'},
            "colour": "blue",
        }
    )
    assert set(errors) == {
        "id", "name", "event", "scope.registry", "filter.nope", "action.url", "action.payload",
        "colour",
    }  # fmt: skip
    assert "slug" in errors["id"]
    assert "unknown field 'nope'" in errors["filter.nope"]
    assert errors["action.payload"] == "unknown variable ${nope}"
    assert errors["colour"] == "Extra inputs are not permitted"


def test_not_an_object() -> None:
    """Something other than a mapping is refused."""
    assert errors_of(["x"]) == {"": "an automation must be an object"}


@pytest.mark.parametrize("bad_id", ["", "-x", "UPPER", "has space", "a/b", "x" * 129])
def test_id_must_be_a_slug(bad_id: str) -> None:
    """Ids are lowercase slugs of at most 128 characters."""
    assert "id" in errors_of({**BASE, "id": bad_id})


def test_enabled_and_revision_are_strict() -> None:
    """enabled must be a boolean and revision an integer >= 1."""
    assert "enabled" in errors_of({**BASE, "enabled": "no"})
    assert "revision" in errors_of({**BASE, "revision": 0})
    assert "revision" in errors_of({**BASE, "revision": "2"})


def test_timestamps_must_be_aware() -> None:
    """created_at and updated_at need a time zone."""
    assert "created_at" in errors_of({**BASE, "created_at": "2026-01-01T00:00:00"})
    assert parse_automation({**BASE, "updated_at": "2026-01-01T00:00:00Z"}).updated_at is not None


def test_create_artifact_needs_collection_scope() -> None:
    """CREATE_ARTIFACT takes an artifact_collection scope only (as in W&B)."""
    errors = errors_of({**BASE, "event": "CREATE_ARTIFACT"})
    assert "scope.type" in errors
    assert "artifact_collection" in errors["scope.type"]
    scope = {"type": "artifact_collection", "entity": "acme", "project": "p", "collection": "c"}
    assert parse_automation({**BASE, "event": "CREATE_ARTIFACT", "scope": scope}).scope == (
        ArtifactCollectionScope(
            type="artifact_collection", entity="acme", project="p", collection="c"
        )
    )


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ({"type": "artifact_collection", "entity": "a", "collection": "c"}, "scope"),
        (
            {
                "type": "artifact_collection",
                "entity": "a",
                "collection": "c",
                "project": "p",
                "registry": "r",
            },
            "scope",
        ),
        ({"type": "project", "entity": "a"}, "scope.project"),
        ({"type": "project", "entity": "a", "project": "p", "registry": "r"}, "scope.registry"),
        ({"type": "team", "entity": "a"}, "scope"),
        ({"type": "registry", "entity": "a/b", "registry": "r"}, "scope.entity"),
    ],
)
def test_scope_shapes(scope: dict[str, Any], field: str) -> None:
    """Scopes are a discriminated union with exactly their own fields."""
    assert field in errors_of({**BASE, "scope": scope})


@pytest.mark.parametrize(
    ("action", "field", "reason"),
    [
        ({"type": "webhook", "url": "ftp://x", "payload": "{}"}, "action.url", "http"),
        ({"type": "webhook", "url": "https://", "payload": "{}"}, "action.url", "host"),
        (
            {"type": "webhook", "url": "https://u:p@ci.example.com/x", "payload": "{}"},
            "action.url",
            "credentials",
        ),
        ({"type": "webhook", "url": "https://a b", "payload": "{}"}, "action.url", "spaces"),
        (
            {"type": "webhook", "url": "https://x", "payload": "{"},
            "action.payload",
            "not valid JSON",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": '{"v": ${alias}}'},
            "action.payload",
            "JSON string",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": "{}", "secret": "s3cr3t value"},
            "action.secret",
            "NAME",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": "{}", "access_token": "1abc"},
            "action.access_token",
            "NAME",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": "{}", "headers": {"X-A": "a\nb"}},
            "action.headers.X-A",
            "CR or LF",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": "{}", "headers": {"X-A": "${nope}"}},
            "action.headers.X-A",
            "${nope}",
        ),
        (
            {"type": "webhook", "url": "https://x", "payload": "{}", "headers": {"Bad Name": "v"}},
            "action.headers.Bad Name.[key]",
            "header name",
        ),
        (
            {"type": "notification", "channel": "c", "title": "${nope}", "message": "m"},
            "action.title",
            "${nope}",
        ),
        (
            {"type": "notification", "channel": "c", "title": "t", "message": "${x}"},
            "action.message",
            "${x}",
        ),
        (
            {
                "type": "notification",
                "channel": "c",
                "title": "t",
                "message": "m",
                "severity": "DEBUG",
            },
            "action.severity",
            "INFO",
        ),
        (
            {"type": "queue_job", "queue": "q", "job": "j", "config": {"a": [{"b": "${zz}"}]}},
            "action.config.a.0.b",
            "${zz}",
        ),
        (
            {"type": "queue_job", "queue": "q", "job": "j", "config": "x"},
            "action.config",
            "dictionary",
        ),
        ({"type": "queue_job", "job": "j"}, "action.queue", "Field required"),
        ({"type": "kafka", "topic": "bad topic", "payload": "{}"}, "action.topic", "Kafka topic"),
        (
            {"type": "kafka", "topic": "__consumer_offsets", "payload": "{}"},
            "action.topic",
            "reserved",
        ),
        ({"type": "kafka", "topic": "..", "payload": "{}"}, "action.topic", "reserved"),
        ({"type": "kafka", "topic": "t", "payload": "${alias}"}, "action.payload", "JSON string"),
        ({"type": "no_op", "url": "x"}, "action.url", "Extra inputs"),
        ({"type": "email"}, "action", "does not match any of the expected tags"),
    ],
)
def test_action_problems(action: dict[str, Any], field: str, reason: str) -> None:
    """Each action type validates its own fields, templates included, with a path."""
    errors = errors_of(with_action(**action))
    assert field in errors, errors
    assert reason in errors[field]


def test_each_action_type_accepted() -> None:
    """A valid action of every type is accepted."""
    kafka = parse_automation(
        with_action(type="kafka", topic="team.events", payload='{"a": "${alias}"}')
    )
    assert isinstance(kafka.action, KafkaAction)
    queue = parse_automation(
        with_action(
            type="queue_job",
            queue="gpu",
            job="train",
            config={"lr": 0.1, "d": "${artifact_version}"},
        )
    )
    assert isinstance(queue.action, QueueJobAction)
    assert queue.action.config["lr"] == 0.1
    note = parse_automation(with_action(type="notification", channel="C", title="t", message="m"))
    assert note.action.type == "notification"
    assert note.action.severity == "INFO"
    assert parse_automation(with_action(type="no_op")).action.type == "no_op"


def test_filter_errors_name_their_path() -> None:
    """A filter problem is reported under filter.<path>."""
    errors = errors_of({**BASE, "filter": {"$or": [{"$and": [{"alias": {"$regex": "(?=x)"}}]}]}})
    assert list(errors) == ["filter.$or.0.$and.0.alias.$regex"]
    assert "RE2" in errors["filter.$or.0.$and.0.alias.$regex"]


def test_wandb_stored_filter_form_is_accepted() -> None:
    """W&B's stored {"$or":[{"$and":[...]}]} form loads."""
    data = merge(BASE, {"filter": {"$or": [{"$and": [{"alias": {"$regex": "prod-.*"}}]}]}})
    assert parse_automation(data).filter is not None


def test_job_id_is_deterministic_and_depends_on_each_part() -> None:
    """job_id is a stable uuid5 of (event id, automation id, revision)."""
    first = job_id("evt-1", "deploy", 1)
    assert first == job_id("evt-1", "deploy", 1)
    # Pinned: the formula is public (consumers may recompute it), so it must not drift.
    assert first == "9939a3d9-5fb6-5bb8-a850-bceeb12469bd"
    assert first == str(uuid.uuid5(JOB_ID_NAMESPACE, "evt-1\ndeploy\n1"))
    assert job_id("evt-1", "deploy", 2) != first
    assert job_id("evt-2", "deploy", 1) != first
    assert job_id("evt-1", "deploy-2", 1) != first


def test_job_id_separator_is_unambiguous() -> None:
    """Moving characters between event id and automation id changes the job id."""
    assert job_id("a-b", "c", 1) != job_id("a", "b-c", 1)
    assert job_id("e1", "a", 11) != job_id("e11", "a", 1)


def test_make_automation_factory() -> None:
    """The shared factory builds a valid automation with overrides."""
    automation = make_automation(id="x1", enabled=False)
    assert automation.id == "x1"
    assert not automation.enabled


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=40).filter(str.isprintable),
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
    st.integers(1, 10**9),
)
def test_job_id_equals_uuid5_of_the_documented_name(
    event_id: str, automation_id: str, revision: int
) -> None:
    """job_id is exactly uuid5(namespace, 'event_id\\nautomation_id\\nrevision')."""
    expected = uuid.uuid5(JOB_ID_NAMESPACE, f"{event_id}\n{automation_id}\n{revision}")
    assert job_id(event_id, automation_id, revision) == str(expected)
