"""Action jobs (contract "Action jobs"): the rendered actions, the jobs, their ids."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from app.contract.events import EventType
from app.contract.runs import RunEventType

__all__ = [
    "JOB_ID_NAMESPACE",
    "ActionJob",
    "KafkaActionJob",
    "NoOpActionJob",
    "NotificationActionJob",
    "QueueJobActionJob",
    "RenderedKafka",
    "RenderedNoOp",
    "RenderedNotification",
    "RenderedQueueJob",
    "RenderedWebhook",
    "WebhookActionJob",
    "job_id",
    "parse_action_job",
]


class RenderedWebhook(BaseModel):
    """A webhook action with its payload and headers rendered; secrets as names."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    url: str
    payload: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = None
    access_token: str | None = None


class RenderedNotification(BaseModel):
    """A notification action with title and message rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    channel: str
    title: str
    message: str
    severity: Literal["INFO", "WARN", "ERROR"]


class RenderedQueueJob(BaseModel):
    """A queue_job action with its config rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    queue: str
    job: str
    config: dict[str, Any] = Field(default_factory=dict)


class RenderedKafka(BaseModel):
    """A kafka action with its payload rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    topic: str
    payload: str


class RenderedNoOp(BaseModel):
    """A no_op action: nothing to render."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class _JobBase(BaseModel):
    """Fields every action job carries (contract "Action jobs")."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    job_id: str
    automation_id: str
    automation_name: str
    automation_revision: int
    event_id: str
    event_type: EventType | RunEventType
    created_at: AwareDatetime
    previous_version: int | None = None
    event: dict[str, Any]


class WebhookActionJob(_JobBase):
    """A job on the webhook topic."""

    action_type: Literal["webhook"] = "webhook"
    action: RenderedWebhook


class NotificationActionJob(_JobBase):
    """A job on the notification topic."""

    action_type: Literal["notification"] = "notification"
    action: RenderedNotification


class QueueJobActionJob(_JobBase):
    """A job on the queue_job topic."""

    action_type: Literal["queue_job"] = "queue_job"
    action: RenderedQueueJob


class KafkaActionJob(_JobBase):
    """A job on the topic its kafka action names."""

    action_type: Literal["kafka"] = "kafka"
    action: RenderedKafka


class NoOpActionJob(_JobBase):
    """A no_op match; never produced to a topic."""

    action_type: Literal["no_op"] = "no_op"
    action: RenderedNoOp


ActionJob = Annotated[
    WebhookActionJob | NotificationActionJob | QueueJobActionJob | KafkaActionJob | NoOpActionJob,
    Field(discriminator="action_type"),
]
_ACTION_JOB: TypeAdapter[ActionJob] = TypeAdapter(ActionJob)


def parse_action_job(raw: bytes | str) -> ActionJob:
    """Read an action job from its JSON; raises pydantic ValidationError."""
    return _ACTION_JOB.validate_json(raw)


JOB_ID_NAMESPACE: Final = uuid.UUID("6f1c2f0e-7a56-5d1b-9a4e-3c8f4b1d2e07")


_NAMESPACE_BYTES = JOB_ID_NAMESPACE.bytes


def job_id(event_id: str, automation_id: str, revision: int) -> str:
    """uuid5(JOB_ID_NAMESPACE, "<event_id>\\n<automation_id>\\n<revision>"): same input, same id."""
    # Neither an event id (printable) nor an automation id (slug) can hold a newline.
    # This is uuid.uuid5 inlined: the UUID object costs more than the hash, per job.
    name = f"{event_id}\n{automation_id}\n{revision}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
