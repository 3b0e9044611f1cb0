"""Webhook deliveries of other platforms (MLflow 3, W&B) as Hookstream events.

Pure functions: the ingest views (app.api.ingest) verify the signature, call these and
produce what they return. Each returns the event as bytes (validated by the contract's
`parse_event`) or None with the reason when a delivery maps to no event. What is refused
raises InvalidEventError with a dead-letter code; the views answer it as POST /events
does (400 / 413 / 422). The mapping is docs/contract.md "Webhook ingest".
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from app.contract.dead_letters import DeadLetterCode
from app.contract.events import Event, EventType, parse_event, parse_object
from app.core.scopes import registry_project
from app.errors import InvalidEventError
from app.serialization import dumps

__all__ = [
    "MLFLOW_IGNORED",
    "Ingested",
    "RecentDeliveries",
    "mlflow_event",
    "mlflow_event_id",
    "wandb_event",
    "wandb_event_id",
]

#: MLflow events with no Hookstream event: acknowledged (2xx, so MLflow does not retry)
#: and not published. A registered model without versions has nothing to act on; prompts
#: are not artifacts Hookstream knows.
MLFLOW_IGNORED: Final = frozenset(
    {
        "registered_model.created",
        "prompt.created",
        "prompt_tag.set",
        "prompt_tag.deleted",
        "prompt_version.created",
        "prompt_version_tag.set",
        "prompt_version_tag.deleted",
        "prompt_alias.created",
        "prompt_alias.deleted",
    }
)

_MLFLOW_TYPES: Final = {
    "model_version.created": EventType.CREATE_ARTIFACT,
    "model_version_alias.created": EventType.ADD_ARTIFACT_ALIAS,
    "model_version_alias.deleted": EventType.REMOVE_ARTIFACT_ALIAS,
    "model_version_tag.set": EventType.ADD_ARTIFACT_TAG,
    "model_version_tag.deleted": EventType.REMOVE_ARTIFACT_TAG,
}

_VERSION = re.compile(r"^v?([0-9]{1,18})$")
_VERSION_STRING = re.compile(r"^([^/:]+)/([^/:]+)/([^/:]+):v([0-9]{1,18})$")
_WANDB_REGISTRY_PREFIX = "wandb-registry-"
# An event id holds at most 128 characters; longer delivery ids are hashed.
_MAX_ID = 100


@dataclass(frozen=True, slots=True)
class Ingested:
    """One delivery mapped: the event and its bytes, or None and why nothing is published."""

    event: Event | None
    raw: bytes | None
    ignored: str | None = None


def _invalid(path: str, reason: str) -> InvalidEventError:
    return InvalidEventError(f"{path}: {reason}", code=DeadLetterCode.INVALID_FIELD)


def _missing(path: str) -> InvalidEventError:
    return InvalidEventError(f"{path}: Field required", code=DeadLetterCode.MISSING_FIELD)


def _stable_id(prefix: str, key: str) -> str:
    if len(key) <= _MAX_ID and key.isprintable():
        return f"{prefix}-{key}"
    return f"{prefix}-{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"


def mlflow_event_id(delivery_id: str) -> str:
    """The event id of an MLflow delivery: fixed by its delivery id, so a retry on any
    worker carries the same event id, and its jobs the same job ids."""
    return _stable_id("mlflow", delivery_id)


def wandb_event_id(body: bytes, bucket: int) -> str:
    """The event id of a W&B delivery: W&B sends no delivery id, so the body's hash and
    the arrival window (`bucket`) stand for one."""
    return f"wandb-{hashlib.sha256(body).hexdigest()[:40]}-{bucket}"


def _text(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        raise _missing(path)
    if not isinstance(value, str) or not value:
        raise _invalid(path, "must be a non-empty string")
    return value


def _version(value: Any, path: str) -> int:
    """MLflow's and W&B's versions are strings ("3", "v3"); Hookstream's are numbers."""
    if value is None:
        raise _missing(path)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _VERSION.match(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(path, f"must be a version number such as '3' (got {value!r:.40})")
    return int(match.group(1))


def _validated(event: dict[str, Any], max_bytes: int) -> Ingested:
    raw = dumps(event)
    parsed, _ = parse_event(raw, max_bytes)
    return Ingested(parsed, raw)


def _occurred_at(value: Any, fallback: datetime) -> str:
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            stamp = None
        if stamp is not None and stamp.tzinfo is not None:
            return stamp.isoformat()
    return fallback.isoformat()


def mlflow_event(
    body: bytes,
    delivery_id: str,
    *,
    received_at: datetime,
    entity: str,
    registry: str,
    max_bytes: int,
) -> Ingested:
    """Map one MLflow 3 delivery `{entity, action, timestamp, data}` to an event."""
    envelope = parse_object(body, max_bytes, what="delivery")
    kind = f"{envelope.get('entity')}.{envelope.get('action')}"
    if kind in MLFLOW_IGNORED:
        return Ingested(None, None, ignored=f"{kind} has no Hookstream event")
    event_type = _MLFLOW_TYPES.get(kind)
    if event_type is None:
        known = ", ".join(sorted([*_MLFLOW_TYPES, *MLFLOW_IGNORED]))
        raise InvalidEventError(
            f"unknown MLflow event {kind[:80]!r}; expected one of {known}",
            code=DeadLetterCode.UNKNOWN_EVENT_TYPE,
        )
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise _missing("data") if data is None else _invalid("data", "must be an object")
    name = _text(data, "name", "data.name")
    # model_version_alias.deleted names no version: 0 stands for "unknown"; the worker's
    # alias pointer gives its jobs the version the alias was on (previous_version).
    version = (
        0
        if event_type is EventType.REMOVE_ARTIFACT_ALIAS and "version" not in data
        else _version(data.get("version"), "data.version")
    )
    workspace = envelope.get("workspace")
    owner = workspace if isinstance(workspace, str) and workspace else entity
    artifact: dict[str, Any] = {"collection": name, "type": "model", "version": version}
    event: dict[str, Any] = {
        "event_id": mlflow_event_id(delivery_id),
        "event_type": event_type.value,
        "occurred_at": _occurred_at(envelope.get("timestamp"), received_at),
        "entity": owner,
        "project": registry_project(registry),
        "registry": registry,
        "artifact": artifact,
        "mlflow": {"event": kind, "delivery_id": delivery_id},
    }
    if event_type in (EventType.ADD_ARTIFACT_ALIAS, EventType.REMOVE_ARTIFACT_ALIAS):
        event["alias"] = _text(data, "alias", "data.alias")
        if event_type is EventType.ADD_ARTIFACT_ALIAS:
            artifact["aliases"] = [event["alias"]]
    elif event_type in (EventType.ADD_ARTIFACT_TAG, EventType.REMOVE_ARTIFACT_TAG):
        # MLflow tags are key/value pairs; a Hookstream tag is the key, the value rides
        # along in artifact.metadata.mlflow_tags.
        event["tag"] = _text(data, "key", "data.key")
        if event_type is EventType.ADD_ARTIFACT_TAG:
            artifact["tags"] = [event["tag"]]
            artifact["metadata"] = {"mlflow_tags": {event["tag"]: data.get("value")}}
    else:
        tags = data.get("tags") or {}
        if not isinstance(tags, dict):
            raise _invalid("data.tags", "must be an object of tag keys to values")
        artifact["tags"] = sorted(str(key) for key in tags)
        artifact["metadata"] = {
            "mlflow_tags": tags,
            "source": data.get("source"),
            "run_id": data.get("run_id"),
            "description": data.get("description"),
        }
    return _validated(event, max_bytes)


def wandb_event(body: bytes, *, received_at: datetime, max_bytes: int, bucket: int) -> Ingested:
    """Map the body of the W&B payload template (docs/contract.md) to an event."""
    payload = parse_object(body, max_bytes, what="delivery")
    event_type = _text(payload, "event_type", "event_type")
    version_string = _text(payload, "artifact_version_string", "artifact_version_string")
    match = _VERSION_STRING.match(version_string)
    if match is None:
        raise _invalid(
            "artifact_version_string", "must be entity/project/collection:vN (W&B's variable)"
        )
    entity, project, collection, version = match.groups()
    registry = (
        project.removeprefix(_WANDB_REGISTRY_PREFIX)
        if project.startswith(_WANDB_REGISTRY_PREFIX)
        else None
    )
    artifact: dict[str, Any] = {
        "collection": payload.get("artifact_collection_name") or collection,
        "type": payload.get("artifact_type") or ("model" if registry else "artifact"),
        "version": int(version),
    }
    event: dict[str, Any] = {
        "event_id": wandb_event_id(body, bucket),
        "event_type": event_type.upper(),
        "occurred_at": _occurred_at(payload.get("occurred_at"), received_at),
        "entity": payload.get("entity_name") or entity,
        "project": payload.get("project_name") or project,
        "registry": registry,
        "artifact": artifact,
    }
    author = payload.get("event_author")
    if author:
        event["author"] = author
    # W&B renders an absent variable as empty text: an empty alias or tag is no alias.
    for field in ("alias", "tag"):
        value = payload.get(field)
        if value:
            event[field] = value
    if event.get("alias"):
        artifact["aliases"] = [event["alias"]]
    if event["event_type"] in ("LINK_ARTIFACT", "LINK_MODEL"):
        # W&B's link event names the linked version only; the source stands for itself.
        event["source"] = {
            "entity": entity,
            "project": project,
            "collection": collection,
            "version": int(version),
        }
    return _validated(event, max_bytes)


class RecentDeliveries:
    """Delivery keys taken in the last `seconds` (one worker's memory, bounded).

    `claim` before producing, `release` when producing failed (a retry may then publish),
    so two concurrent retries of one delivery publish once.
    """

    def __init__(self, seconds: float, max_keys: int = 100_000) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str, now: float) -> bool:
        """True when `key` is new (now claimed); False for a repeat within the window."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at > now - self.seconds and len(self._seen) < self.max_keys:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def release(self, key: str) -> None:
        """Forget `key` (its publication failed)."""
        self._seen.pop(key, None)
