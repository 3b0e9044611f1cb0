"""JSON Schemas of every payload on Hookstream's topics, generated from the models.

Events and automations are described as they are accepted (validation mode); action
jobs and dead-letter records as they are written (serialization mode). Files are
pretty-printed with sorted keys and a trailing newline, so they diff cleanly and
`check_schemas` can compare bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from app.contract.automations import Automation
from app.contract.dead_letters import DeadLetter
from app.contract.events import Event
from app.contract.jobs import (
    KafkaActionJob,
    NotificationActionJob,
    QueueJobActionJob,
    WebhookActionJob,
)
from app.contract.runs import RunMetricRecord, RunStateRecord
from app.serialization import dumps

__all__ = ["SCHEMAS", "check_schemas", "export_schemas", "render_schemas"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "event.schema.json": (Event, "validation"),
    "automation.schema.json": (Automation, "validation"),
    "action-job.webhook.schema.json": (WebhookActionJob, "serialization"),
    "action-job.notification.schema.json": (NotificationActionJob, "serialization"),
    "action-job.queue_job.schema.json": (QueueJobActionJob, "serialization"),
    "action-job.kafka.schema.json": (KafkaActionJob, "serialization"),
    "dead-letter.schema.json": (DeadLetter, "serialization"),
    # Run events (issue 14): the two record types of the run-events topic.
    "run-metric.schema.json": (RunMetricRecord, "validation"),
    "run-state.schema.json": (RunStateRecord, "validation"),
}


def _schema(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)
    schema["$schema"] = _DIALECT
    return schema


def render_schemas() -> dict[str, bytes]:
    """File name to exact file content."""
    return {
        name: dumps(_schema(model, mode), sort_keys=True, indent=True) + b"\n"
        for name, (model, mode) in SCHEMAS.items()
    }


def export_schemas(directory: str | Path) -> list[Path]:
    """Write every schema into `directory` (created if needed); returns the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_schemas().items():
        path = target / name
        path.write_bytes(content)
        written.append(path)
    return written


def check_schemas(directory: str | Path) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    target = Path(directory)
    stale = []
    for name, content in render_schemas().items():
        path = target / name
        if not path.is_file() or path.read_bytes() != content:
            stale.append(name)
    return stale
