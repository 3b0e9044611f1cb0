"""The pipeline: dead letters, alias pointers, routing, job contents and automation records."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.contract.dead_letters import DeadLetter, DeadLetterCode
from app.contract.jobs import WebhookActionJob, job_id, parse_action_job
from app.core.matching import AutomationIndex
from app.core.pipeline import (
    MemoryAliasStore,
    Pipeline,
    SourceInfo,
    automation_from_record,
    update_alias_pointers,
)
from app.errors import ConfigError, InvalidAutomationError
from app.serialization import dumps, loads
from tests.factories import ACTION_TOPICS, event_bytes, event_dict, make_automation, make_event

NOW = datetime(2026, 11, 26, 10, 0, 0, 120000, tzinfo=UTC)
SOURCE = SourceInfo("registry-events", 2, 41, b"acme/x/y", [("trace", b"t-1"), ("empty", None)])
REGISTRY = {"type": "registry", "entity": "acme", "registry": "model"}


def pipeline(*automations: Any, reserved: tuple[str, ...] = ()) -> Pipeline:
    """A pipeline over these automations with a fixed clock."""
    return Pipeline(
        AutomationIndex(automations), ACTION_TOPICS, 4096, lambda: NOW, reserved_topics=reserved
    )


def run(p: Pipeline, raw: bytes | None, store: MemoryAliasStore | None = None) -> Any:
    """Process one message with a fresh (or given) alias store."""
    return p.process(raw, aliases=store if store is not None else MemoryAliasStore(), source=SOURCE)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, DeadLetterCode.EMPTY),
        (b"", DeadLetterCode.EMPTY),
        (b"{oops", DeadLetterCode.NOT_JSON),
        (b"\xff", DeadLetterCode.NOT_UTF8),
        (b"[]", DeadLetterCode.NOT_OBJECT),
        (b"x" * 5000, DeadLetterCode.TOO_LARGE),
        (event_bytes(event_type="NOPE"), DeadLetterCode.UNKNOWN_EVENT_TYPE),
        (event_bytes(entity=None), DeadLetterCode.MISSING_FIELD),
        (event_bytes(artifact={"version": "three"}), DeadLetterCode.INVALID_FIELD),
    ],
)
def test_invalid_input_becomes_a_dead_letter(raw: bytes | None, code: str) -> None:
    """Every invalid message yields a dead-letter record with the original bytes; no raise."""
    result = run(pipeline(make_automation()), raw)
    assert result.event is None
    assert result.outbounds == []
    assert result.error_code == code
    assert result.dead_letter is not None
    record = DeadLetter.model_validate_json(result.dead_letter)
    assert record.error_code == code
    assert record.reason == result.reason
    assert record.original_value() == raw
    assert record.key_b64 == base64.b64encode(b"acme/x/y").decode()
    assert (record.source_topic, record.source_partition, record.source_offset) == (
        "registry-events",
        2,
        41,
    )
    assert [(h.key, h.value_b64) for h in record.headers] == [
        ("trace", base64.b64encode(b"t-1").decode()),
        ("empty", None),
    ]
    assert record.failed_at == NOW


def test_dead_letter_keeps_event_id_when_readable() -> None:
    """The dead-letter record names the event id when the object had one."""
    result = run(pipeline(), event_bytes(artifact={"version": -5}))
    assert result.dead_letter_record is not None
    assert result.dead_letter_record.event_id == "evt-1"
    assert "artifact.version" in result.dead_letter_record.reason


def test_headers_given_as_mapping() -> None:
    """Headers may come as a mapping too."""
    source = SourceInfo("t", headers={"k": b"v"})
    result = pipeline().process(b"[]", aliases=MemoryAliasStore(), source=source)
    assert result.dead_letter_record is not None
    assert result.dead_letter_record.headers[0].key == "k"


def test_valid_event_without_matches() -> None:
    """A valid event with no automation gives the event and nothing else."""
    result = run(pipeline(), event_bytes())
    assert result.event is not None
    assert result.dead_letter is None
    assert result.outbounds == []
    assert result.matched == []


def test_webhook_job_contents_and_routing() -> None:
    """A matched webhook automation yields a job on the webhook topic, keyed by its id."""
    automation = make_automation(
        revision=4,
        action={
            "type": "webhook",
            "url": "https://ci.example.com/hooks/deploy",
            "payload": '{"model": "${artifact_version_string}", "by": "${event_author}"}',
            "headers": {"X-Alias": "${alias}"},
            "secret": "DEPLOY_HOOK_SECRET",
            "access_token": "DEPLOY_HOOK_TOKEN",
        },
    )
    raw = event_bytes(extra_field="kept")
    result = run(pipeline(automation), raw)
    [out] = result.outbounds
    assert out.topic == "actions.webhook"
    assert out.key == b"deploy-on-production"
    job = loads(out.value)
    assert job["job_id"] == job_id("evt-1", "deploy-on-production", 4)
    assert job["automation_revision"] == 4
    assert job["automation_name"] == automation.name
    assert job["event_type"] == "ADD_ARTIFACT_ALIAS"
    assert job["action_type"] == "webhook"
    assert job["created_at"] == "2026-11-26T10:00:00.120Z"
    assert job["event"] == loads(raw)
    assert job["action"] == {
        "url": "https://ci.example.com/hooks/deploy",
        "payload": '{"model": "acme/wandb-registry-model/mnist-classifier:v3", "by": "alice"}',
        "headers": {"X-Alias": "production"},
        "secret": "DEPLOY_HOOK_SECRET",
        "access_token": "DEPLOY_HOOK_TOKEN",
    }
    assert (out.action_type, out.automation_id) == ("webhook", "deploy-on-production")
    assert isinstance(out.job, WebhookActionJob)
    assert parse_action_job(out.value) == out.job


def test_created_at_is_utc_whatever_the_clock_zone() -> None:
    """A clock in another zone still gives a UTC created_at ending in Z."""
    plus_two = timezone(timedelta(hours=2))
    p = Pipeline(
        AutomationIndex([make_automation()]), ACTION_TOPICS, 4096, lambda: NOW.astimezone(plus_two)
    )
    [out] = run(p, event_bytes()).outbounds
    assert loads(out.value)["created_at"] == "2026-11-26T10:00:00.120Z"


def test_every_action_type_routes_to_its_topic() -> None:
    """webhook/notification/queue_job go to their topics, kafka to its own, no_op nowhere."""
    automations = [
        make_automation(id="a-webhook"),
        make_automation(
            id="b-note",
            action={"type": "notification", "channel": "C", "title": "${alias}", "message": "m"},
        ),
        make_automation(
            id="c-queue",
            action={
                "type": "queue_job",
                "queue": "q",
                "job": "j",
                "config": {"v": "${artifact_version}", "n": 1},
            },
        ),
        make_automation(
            id="d-kafka",
            action={
                "type": "kafka",
                "topic": "team.events",
                "payload": '{"v": "${artifact_version}"}',
            },
        ),
        make_automation(id="e-noop", action={"type": "no_op"}),
    ]
    result = run(pipeline(*automations), event_bytes())
    assert [c.id for c in result.matched] == ["a-webhook", "b-note", "c-queue", "d-kafka", "e-noop"]
    routed = {out.key.decode(): out.topic for out in result.outbounds}
    assert routed == {
        "a-webhook": "actions.webhook",
        "b-note": "actions.notification",
        "c-queue": "actions.queue_job",
        "d-kafka": "team.events",
    }
    assert result.skipped == [("e-noop", "no_op action: nothing to send")]
    jobs = {out.key.decode(): loads(out.value) for out in result.outbounds}
    assert jobs["b-note"]["action"] == {
        "channel": "C",
        "title": "production",
        "message": "m",
        "severity": "INFO",
    }
    assert jobs["c-queue"]["action"]["config"] == {"v": "v3", "n": 1}
    assert jobs["d-kafka"]["action"] == {"topic": "team.events", "payload": '{"v": "v3"}'}
    for out in result.outbounds:
        assert parse_action_job(out.value).action_type == out.job.action_type


def test_kafka_action_to_a_reserved_topic_is_skipped() -> None:
    """A kafka action aimed at Hookstream's own topics is never produced."""
    automations = [
        make_automation(
            id="k1", action={"type": "kafka", "topic": "registry-events", "payload": "{}"}
        ),
        make_automation(
            id="k2", action={"type": "kafka", "topic": "actions.webhook", "payload": "{}"}
        ),
    ]
    result = run(pipeline(*automations, reserved=("registry-events",)), event_bytes())
    assert result.outbounds == []
    assert [skip[0] for skip in result.skipped] == ["k1", "k2"]
    assert "reserved" in result.skipped[0][1]


def test_pipeline_needs_every_fixed_topic() -> None:
    """A missing action topic is a configuration error."""
    with pytest.raises(ConfigError, match="queue_job"):
        Pipeline(AutomationIndex(), {"webhook": "w", "notification": "n"}, 1024)


def test_disabled_automation_never_fires_in_pipeline() -> None:
    """A disabled automation produces nothing."""
    result = run(pipeline(make_automation(enabled=False)), event_bytes())
    assert result.matched == []
    assert result.outbounds == []


def test_replay_gives_the_same_job_id() -> None:
    """A redelivered event yields the same job id; a new revision yields a new one."""
    store = MemoryAliasStore()
    p = pipeline(make_automation())
    first = run(p, event_bytes(), store).outbounds[0]
    again = run(p, event_bytes(), store).outbounds[0]
    assert loads(first.value)["job_id"] == loads(again.value)["job_id"]
    bumped = run(pipeline(make_automation(revision=2)), event_bytes(), store).outbounds[0]
    assert loads(bumped.value)["job_id"] != loads(first.value)["job_id"]


def test_previous_version_is_none_for_a_new_alias() -> None:
    """The first time an alias is added in a collection, previous_version is null."""
    result = run(pipeline(make_automation()), event_bytes())
    assert result.previous_version is None
    assert loads(result.outbounds[0].value)["previous_version"] is None


def test_previous_version_follows_the_alias() -> None:
    """When the alias moves, previous_version is where it pointed before."""
    store = MemoryAliasStore()
    p = pipeline(
        make_automation(
            action={
                "type": "webhook",
                "url": "https://x.example",
                "payload": '{"p": "${previous_version}"}',
            }
        )
    )
    run(p, event_bytes(artifact={"version": 3, "aliases": ["production"]}), store)
    result = run(
        p, event_bytes(event_id="evt-2", artifact={"version": 5, "aliases": ["production"]}), store
    )
    assert result.previous_version == 3
    job = loads(result.outbounds[0].value)
    assert job["previous_version"] == 3
    assert loads(job["action"]["payload"]) == {"p": "v3"}
    path = "acme/wandb-registry-model/mnist-classifier"
    assert store.get(path) == {"production": 5}


def test_alias_pointers_record_every_alias_of_any_event() -> None:
    """Aliases carried by any event move to its version; other collections are untouched."""
    store = MemoryAliasStore()
    create = make_event(
        event_type="CREATE_ARTIFACT",
        alias=None,
        artifact={"version": 7, "aliases": ["latest", "candidate"]},
    )
    assert update_alias_pointers(create, store) is None
    assert store.get(create.collection_path) == {"latest": 7, "candidate": 7}
    other = make_event(
        artifact={"collection": "other", "version": 1, "aliases": []}, alias="candidate"
    )
    assert update_alias_pointers(other, store) is None
    assert store.get(create.collection_path) == {"latest": 7, "candidate": 7}
    moved = make_event(artifact={"version": 8, "aliases": []}, alias="candidate")
    assert update_alias_pointers(moved, store) == 7
    assert store.get(create.collection_path) == {"latest": 7, "candidate": 8}


class RecordingStore(MemoryAliasStore):
    """Counts writes and keeps every dict it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, int]] = []

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Record the exact dict object given."""
        self.writes.append(pointers)
        super().set(collection_path, pointers)


def test_alias_store_gets_a_new_dict_and_no_needless_writes() -> None:
    """The store is given a new dict each time, and not written when nothing changes."""
    store = RecordingStore()
    event = make_event()
    update_alias_pointers(event, store)
    update_alias_pointers(event, store)
    assert len(store.writes) == 1
    before = store.writes[0]
    update_alias_pointers(make_event(artifact={"version": 9}), store)
    assert len(store.writes) == 2
    assert store.writes[1] is not before
    assert before == {"latest": 3, "production": 3}


def test_a_failing_automation_does_not_stop_the_others() -> None:
    """If rendering one automation raises, the others still produce their jobs."""
    good = make_automation(id="b-good")
    broken = AutomationIndex([make_automation(id="a-bad"), good])
    compiled = broken.get("a-bad")
    assert compiled is not None

    def explode(variables: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    compiled._render = explode
    p = Pipeline(broken, ACTION_TOPICS, 4096, lambda: NOW)
    result = run(p, event_bytes())
    assert [out.key for out in result.outbounds] == [b"b-good"]
    assert result.failures == [("a-bad", "RuntimeError: boom")]


def test_automation_from_record() -> None:
    """Records of the compacted topic: tombstone, automation, invalid, key mismatch."""
    assert automation_from_record(None) is None
    record = dumps(make_automation().model_dump(mode="json", exclude_none=True))
    automation = automation_from_record(record, key=b"deploy-on-production")
    assert automation is not None
    assert automation.id == "deploy-on-production"
    with pytest.raises(InvalidAutomationError, match="not valid JSON"):
        automation_from_record(b"{nope")
    with pytest.raises(InvalidAutomationError, match="must be a JSON object"):
        automation_from_record(b"[]")
    with pytest.raises(InvalidAutomationError, match="differs from id"):
        automation_from_record(record, key=b"other")
    with pytest.raises(InvalidAutomationError) as info:
        automation_from_record(dumps({**loads(record), "filter": {"bad": 1}}))
    assert info.value.errors[0][0] == "filter.bad"


def test_raw_event_dict_is_the_received_object() -> None:
    """The job's event is the object as received, legacy names and extras included."""
    source = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 7}
    raw = event_bytes(event_type="LINK_MODEL", source=source, alias=None, producer="svc")
    link = make_automation(event="LINK_ARTIFACT")
    [out] = run(pipeline(link), raw).outbounds
    job = loads(out.value)
    assert job["event_type"] == "LINK_ARTIFACT"
    assert job["event"]["event_type"] == "LINK_MODEL"
    assert job["event"]["producer"] == "svc"
    assert job["event"] == event_dict(
        event_type="LINK_MODEL", source=source, alias=None, producer="svc"
    )
