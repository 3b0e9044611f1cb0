"""Events built from the producer's arguments, validated by the contract before sending."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.contract.events import Event, EventType, parse_event
from app.contract.runs import RunMetricRecord, RunStateRecord, parse_run_record
from app.core.scopes import registry_project
from app.serialization import dumps

__all__ = [
    "Place",
    "build_event",
    "build_run_record",
    "parse_version_path",
    "validated",
    "validated_run",
]


@dataclass(frozen=True, slots=True)
class Place:
    """Where events go when a call does not say: entity, project, registry, author."""

    entity: str | None = None
    project: str | None = None
    registry: str | None = None
    author: str | None = None


def parse_version_path(path: str) -> dict[str, Any]:
    """`entity/project/collection:v3` (W&B's artifact path) as a contract `source`."""
    entity, _, rest = path.partition("/")
    project, _, rest = rest.partition("/")
    collection, sep, version = rest.partition(":v")
    if not (entity and project and collection and sep and version.isdigit()):
        raise ValueError(f"expected entity/project/collection:vN, got {path!r}")
    return {"entity": entity, "project": project, "collection": collection, "version": int(version)}


def validated(event: Event | Mapping[str, Any], max_bytes: int) -> tuple[Event, bytes]:
    """The event and the bytes to send; InvalidEventError (with the field) if it is none."""
    obj = (
        event.model_dump(mode="json", exclude_none=True)
        if isinstance(event, Event)
        else dict(event)
    )
    raw = dumps(obj)
    return parse_event(raw, max_bytes)[0], raw


def _place_fields(
    place: Place, overrides: dict[str, Any], names: tuple[str, ...]
) -> dict[str, Any]:
    """The place's fields among `names`, each replaced by an override of that name (popped)."""
    where = {name: getattr(place, name) for name in names}
    where.update({k: overrides.pop(k) for k in list(overrides) if k in where})
    return where


def build_event(
    event_type: EventType,
    place: Place,
    collection: str,
    version: int,
    *,
    artifact_type: str = "model",
    alias: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    aliases: Iterable[str] = (),
    tags: Iterable[str] = (),
    digest: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One event as the contract writes it; `place` fills entity, project, registry, author
    unless `overrides` name them. An event id is generated unless given (give your own to
    make a retry idempotent: its jobs keep their job ids)."""
    where = _place_fields(place, overrides, ("entity", "project", "registry", "author"))
    if where["project"] is None and where["registry"] is not None:
        where["project"] = registry_project(where["registry"])  # W&B's registry project
    artifact: dict[str, Any] = {
        "collection": collection,
        "type": artifact_type,
        "version": version,
        "aliases": list(aliases),
        "tags": list(tags),
        "metadata": dict(metadata or {}),
    }
    if digest is not None:
        artifact["digest"] = digest
    event: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type.value,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        **{k: v for k, v in where.items() if v is not None},
        "artifact": artifact,
        **overrides,
    }
    if alias is not None:
        event["alias"] = alias
    if tag is not None:
        event["tag"] = tag
    if source is not None:
        event["source"] = parse_version_path(source)
    return event


def validated_run(
    record: Mapping[str, Any], max_bytes: int
) -> tuple[RunMetricRecord | RunStateRecord, bytes]:
    """A run record and the bytes to send; InvalidEventError (with the field) if none."""
    raw = dumps(dict(record))
    return parse_run_record(raw, max_bytes)[0], raw


def build_run_record(
    event_type: str,
    place: Place,
    run_id: str,
    *,
    run: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A run-events record (contract "Run events"); `run` adds name, user, tags, config,
    state to the run's id. No event id unless given: the worker's default
    `<run path>@<partition>:<offset>` is then the idempotency key."""
    where = _place_fields(place, fields, ("entity", "project"))
    record: dict[str, Any] = {
        "event_type": event_type,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        **{k: v for k, v in where.items() if v is not None},
        "run": {**dict(run or {}), "id": run_id},
        **fields,
    }
    if event_id is not None:
        record["event_id"] = event_id
    return record
