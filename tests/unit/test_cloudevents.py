"""CloudEvents 1.0 in: records and requests built by the `cloudevents` package itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import http, kafka
from cloudevents.core.v1.event import CloudEvent

from app.core.cloudevents import from_http, from_kafka, is_cloudevent
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.errors import InvalidEventError
from app.serialization import dumps, loads
from tests.factories import ACTION_TOPICS, NOW, event_dict, make_automation

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def cloud(data: Any, **attributes: Any) -> CloudEvent:
    """A CloudEvent of a registry: type `...ADD_ARTIFACT_ALIAS`, id `ce-1`."""
    base = {
        "type": "com.example.registry.ADD_ARTIFACT_ALIAS",
        "source": "/registry",
        "id": "ce-1",
        "time": WHEN,
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes={**base, **attributes}, data=data)


def bare_event() -> dict[str, Any]:
    """A Hookstream event without what the CloudEvent attributes supply."""
    event = event_dict()
    for field in ("event_id", "event_type", "occurred_at"):
        del event[field]
    return event


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_kafka_cloudevent_gives_the_event_with_id_time_and_type_from_attributes(
    mode: str,
) -> None:
    """Both Kafka modes: data is the event; id, time and type fill what it leaves out."""
    make = kafka.to_binary_event if mode == "binary" else kafka.to_structured_event
    message = make(cloud(bare_event()))
    event = loads(from_kafka(list(message.headers.items()), message.value))
    assert event["event_id"] == "ce-1"
    assert event["event_type"] == "ADD_ARTIFACT_ALIAS"
    assert event["occurred_at"].startswith("2026-12-01T12:00:00")
    assert event["alias"] == "production"


def test_data_fields_win_over_attributes() -> None:
    """An event id in the data is the event's, whatever the CloudEvent id."""
    message = kafka.to_binary_event(cloud(event_dict(event_id="own-id")))
    assert loads(from_kafka(message.headers, message.value))["event_id"] == "own-id"


def test_a_record_without_cloudevent_headers_passes_unchanged() -> None:
    """Plain records (other headers, or none) are the event bytes as they are."""
    assert from_kafka([("trace", b"1")], b"plain") == b"plain"


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_http_cloudevent_is_recognised_and_unwrapped(mode: str) -> None:
    """ce- headers or application/cloudevents+json: the event is the data."""
    make = http.to_binary_event if mode == "binary" else http.to_structured_event
    message = make(cloud(bare_event()))
    assert is_cloudevent(message.headers)
    assert loads(from_http(message.headers, message.body))["event_type"] == "ADD_ARTIFACT_ALIAS"
    assert not is_cloudevent({"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("headers", "body", "needle"),
    [
        ({"ce_specversion": b"1.0"}, b"{}", "not a CloudEvent"),
        ({"content-type": b"application/cloudevents+json"}, b"{nope", "not a CloudEvent"),
        (
            {"content-type": b"application/cloudevents+json"},
            dumps({"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data": [1]}),
            "must be a JSON object",
        ),
        ({"ce_specversion": b"9.9", "ce_id": b"x"}, b"{}", "not a CloudEvent"),
    ],
)
def test_malformed_cloudevents_are_refused_with_a_reason(
    headers: dict[str, bytes], body: bytes, needle: str
) -> None:
    """Missing attributes, bad JSON, data that is no object, an unknown spec version."""
    with pytest.raises(InvalidEventError, match=needle):
        from_kafka(headers, body)


def test_pipeline_turns_a_binary_cloudevent_into_jobs_and_a_bad_one_into_a_dead_letter() -> None:
    """The worker's path: a CloudEvent record matches like the plain event; a malformed one
    is a dead letter that keeps the original bytes and headers."""
    pipeline = Pipeline(AutomationIndex([make_automation()]), ACTION_TOPICS, 64 * 1024, lambda: NOW)
    message = kafka.to_binary_event(cloud(bare_event()))
    headers = list(message.headers.items())
    ok = pipeline.process(
        message.value, aliases=MemoryAliasStore(), source=SourceInfo("t", headers=headers)
    )
    assert ok.event is not None
    assert ok.event.event_id == "ce-1"
    assert len(ok.outbounds) == 1
    bad = pipeline.process(
        b"[1]", aliases=MemoryAliasStore(), source=SourceInfo("t", headers=headers)
    )
    record = bad.dead_letter_record
    assert record is not None
    assert record.value_b64 == "WzFd"  # base64 of the original b"[1]"
    assert "JSON object" in record.reason
    assert {h.key for h in record.headers} >= {"ce_specversion", "ce_id"}


def test_an_automation_asking_for_cloudevents_gets_ce_headers_on_its_jobs() -> None:
    """job_format cloudevents: the job record keeps its JSON value and carries binary-mode
    ce_ headers the `cloudevents` package reads back (id = job id, type by action)."""
    plain = make_automation(id="plain")
    cloudy = make_automation(id="cloudy", job_format="cloudevents")
    pipeline = Pipeline(AutomationIndex([plain, cloudy]), ACTION_TOPICS, 64 * 1024, lambda: NOW)
    result = pipeline.process(
        dumps(event_dict()), aliases=MemoryAliasStore(), source=SourceInfo("t")
    )
    by_id = {out.automation_id: out for out in result.outbounds}
    assert by_id["plain"].headers is None
    out = by_id["cloudy"]
    assert out.headers is not None
    message = kafka.KafkaMessage(headers=dict(out.headers), key=out.key, value=out.value)
    cloud = kafka.from_binary_event(message)
    job = loads(out.value)
    assert cloud.get_id() == job["job_id"]
    assert cloud.get_type() == "io.hookstream.job.webhook"
    assert cloud.get_source() == "/hookstream/automations/cloudy"
    assert cloud.get_subject() == job["event_id"]
    assert cloud.get_data() == job


def test_console_form_keeps_the_job_format() -> None:
    """Editing an automation in the console keeps `job_format: cloudevents`."""
    from app.api.console.forms import automation_from_form, form_from_automation

    stored = make_automation(job_format="cloudevents").model_dump(mode="json")
    assert automation_from_form(form_from_automation(stored))["job_format"] == "cloudevents"
