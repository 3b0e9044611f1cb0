"""CloudEvents 1.0 in: a Hookstream event wrapped in a CloudEvent, on Kafka or HTTP.

Binary mode (`ce_*` Kafka headers, `ce-*` HTTP headers; the value or body is the data)
and structured mode (content type `application/cloudevents+json`; the value or body is
the whole CloudEvent) are read with the `cloudevents` package. The data is the
Hookstream event; what it leaves out comes from the CloudEvent's attributes: `id` is
the `event_id`, `time` the `occurred_at`, and the last dot-separated part of `type`
(`com.example.registry.ADD_ARTIFACT_ALIAS`) the `event_type`. A message that is no
CloudEvent passes unchanged (docs/contract.md "CloudEvents").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from app.contract.dead_letters import DeadLetterCode
from app.errors import InvalidEventError
from app.serialization import JSONDecodeError, dumps, loads

__all__ = [
    "JOB_TYPE_PREFIX",
    "STRUCTURED_CONTENT_TYPE",
    "from_http",
    "from_kafka",
    "is_cloudevent",
    "job_headers",
]

STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
_FORMAT: Final = JSONFormat()
#: The CloudEvent `type` of a job is this plus its action type (`...job.webhook`).
JOB_TYPE_PREFIX: Final = "io.hookstream.job."


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """True when HTTP `headers` carry a CloudEvent (binary or structured mode)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "ce-specversion" in lowered:
        return True
    return lowered.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE)


def _event_bytes(read: Any) -> bytes:
    """The Hookstream event of a CloudEvent `read()` gives; InvalidEventError if none."""
    try:
        cloud: BaseCloudEvent = read()
    except Exception as exc:  # the package raises many kinds on hostile input
        raise InvalidEventError(
            f"not a CloudEvent: {str(exc)[:300]}", code=DeadLetterCode.INVALID_FIELD
        ) from None
    data = cloud.get_data()
    if isinstance(data, bytes | str):
        # Binary mode without a JSON content type leaves the data undecoded; the event
        # is JSON whatever the sender labelled it.
        with contextlib.suppress(JSONDecodeError):
            data = loads(data)
    if not isinstance(data, dict):
        raise InvalidEventError(
            "CloudEvent data must be a JSON object (the Hookstream event)",
            code=DeadLetterCode.INVALID_FIELD,
        )
    attributes = cloud.get_attributes()
    event = dict(data)
    event.setdefault("event_id", attributes.get("id"))
    when = attributes.get("time")
    if "occurred_at" not in event and isinstance(when, datetime):
        event["occurred_at"] = when.isoformat()
    kind = attributes.get("type")
    if "event_type" not in event and isinstance(kind, str):
        event["event_type"] = kind.rsplit(".", 1)[-1]
    return dumps(event)


def from_http(headers: Mapping[str, str], body: bytes) -> bytes:
    """The event bytes of an HTTP CloudEvent."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message = ce_http.HTTPMessage(headers=lowered, body=body)
    return _event_bytes(lambda: ce_http.from_http(message, _FORMAT))


def from_kafka(
    headers: Iterable[tuple[str | bytes, bytes | None]] | Mapping[str, bytes | None],
    value: bytes,
) -> bytes:
    """The event bytes of a Kafka record: unwrapped when it is a CloudEvent, else `value`."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    decoded: dict[str, bytes] = {}
    for key, raw in items:
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        decoded[name.lower()] = raw or b""
    structured = decoded.get("content-type", b"").startswith(STRUCTURED_CONTENT_TYPE.encode())
    if "ce_specversion" not in decoded and not structured:
        return value
    message = ce_kafka.KafkaMessage(headers=decoded, key=None, value=value)
    return _event_bytes(lambda: ce_kafka.from_kafka(message, _FORMAT))


def job_headers(
    job_id: str, automation_id: str, action_type: str, event_id: str, created_at: datetime
) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode `ce_` headers of a job record (its value is the data):
    id the job id, source the automation, type by action, subject the event id."""
    cloud = CloudEvent(
        attributes={
            "id": job_id,
            "source": f"/hookstream/automations/{automation_id}",
            "type": JOB_TYPE_PREFIX + action_type,
            "subject": event_id,
            "time": created_at,
            "datacontenttype": "application/json",
        },
        data=None,
    )
    message = ce_kafka.to_binary_event(cloud)
    return list(message.headers.items())
