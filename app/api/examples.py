"""A typed example event for an automation: its event type, inside its scope.

Dry runs without an event use it. Simple equality clauses of the filter (a value,
`$eq`, the first of `$in`, `$contains` on a list) are honoured so that the example
usually matches; anything else (`$regex`, ranges, `$or`) is left to the dry run's
explanation, which then says exactly which clause the example fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.contract.automations import Automation
from app.contract.events import ALIAS_EVENTS, TAG_EVENTS, EventType
from app.contract.timestamps import iso_z
from app.core.scopes import scope_place

__all__ = ["example_event"]

_LIST_FIELDS = frozenset({"aliases", "tags"})


def _wanted(condition: Any) -> tuple[bool, Any]:
    """(found, value) for a condition that pins one value."""
    if not isinstance(condition, Mapping):
        return True, condition
    if "$eq" in condition:
        return True, condition["$eq"]
    values = condition.get("$in")
    if isinstance(values, list) and values:
        return True, values[0]
    if "$contains" in condition:
        return True, condition["$contains"]
    return False, None


def _clauses(filter_: Mapping[str, Any], out: list[Mapping[str, Any]], depth: int = 0) -> None:
    """The filter and its `$and` parts, through a one-branch `$or` (the W&B SDK's wrapper)."""
    out.append(filter_)
    if depth > 8:
        return
    parts = filter_.get("$and")
    branches = filter_.get("$or")
    nested = list(parts) if isinstance(parts, list) else []
    if isinstance(branches, list) and len(branches) == 1:
        nested.extend(branches)
    for part in nested:
        if isinstance(part, Mapping):
            _clauses(part, out, depth + 1)


def _pins(filter_: Mapping[str, Any] | None) -> dict[str, Any]:
    """Field -> value for the top-level (and `$and`) clauses that pin one value."""
    pins: dict[str, Any] = {}
    if not filter_:
        return pins
    clauses: list[Mapping[str, Any]] = []
    _clauses(filter_, clauses)
    for clause in clauses:
        for field, condition in clause.items():
            if field.startswith("$"):
                continue
            found, value = _wanted(condition)
            if found:
                pins.setdefault(field, value)
    return pins


def example_event(automation: Automation, now: datetime) -> dict[str, Any]:
    """A valid event of the automation's type inside its scope, as a JSON object."""
    place = scope_place(automation.scope)
    pins = _pins(automation.filter)
    if automation.scope.type != "artifact_collection" and isinstance(pins.get("collection"), str):
        place["collection"] = pins["collection"]
    alias = pins.get("alias") if isinstance(pins.get("alias"), str) else "production"
    version = pins.get("version") if type(pins.get("version")) is int else 1
    artifact: dict[str, Any] = {
        "collection": place["collection"],
        "type": pins["type"] if isinstance(pins.get("type"), str) else "model",
        "version": version,
        "digest": "0123456789abcdef0123456789abcdef",
        "aliases": ["latest"],
        "tags": [],
        "metadata": {},
    }
    for field in _LIST_FIELDS:
        if isinstance(pins.get(field), str):
            artifact[field].append(pins[field])
    for field, value in pins.items():
        if field.startswith("metadata.") and "." not in field[len("metadata.") :]:
            artifact["metadata"][field[len("metadata.") :]] = value
    event: dict[str, Any] = {
        "event_id": f"example-{automation.id}",
        "event_type": automation.event.value,
        "occurred_at": iso_z(now),
        "author": pins["author"] if isinstance(pins.get("author"), str) else "example-user",
        "entity": place["entity"],
        "project": place["project"],
        "artifact": artifact,
    }
    if "registry" in place:
        event["registry"] = place["registry"]
    kind = automation.event
    if kind in ALIAS_EVENTS:
        event["alias"] = alias
        if kind is EventType.ADD_ARTIFACT_ALIAS and alias not in artifact["aliases"]:
            artifact["aliases"].append(alias)
    elif isinstance(pins.get("alias"), str) and pins["alias"] not in artifact["aliases"]:
        # Elsewhere `alias` is matched against the version's aliases.
        artifact["aliases"].append(pins["alias"])
    if kind in TAG_EVENTS:
        tag = pins["tag"] if isinstance(pins.get("tag"), str) else "candidate"
        event["tag"] = tag
        if kind is EventType.ADD_ARTIFACT_TAG and tag not in artifact["tags"]:
            artifact["tags"].append(tag)
    elif isinstance(pins.get("tag"), str) and pins["tag"] not in artifact["tags"]:
        artifact["tags"].append(pins["tag"])
    if kind in (EventType.LINK_ARTIFACT, EventType.UNLINK_ARTIFACT):
        event["source"] = {
            "entity": place["entity"],
            "project": "example-project",
            "collection": place["collection"],
            "version": version,
        }
    return event
