"""Builders of valid events and automations for tests; override any field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from app.contract.automations import Automation, parse_automation
from app.contract.events import Event, parse_event
from app.serialization import dumps

__all__ = [
    "ACTION_TOPICS",
    "NOW",
    "automation_dict",
    "event_bytes",
    "event_dict",
    "make_automation",
    "make_event",
    "merge",
]

#: Action type -> job topic, as a Pipeline takes them.
ACTION_TOPICS: dict[str, str] = {
    "webhook": "actions.webhook",
    "notification": "actions.notification",
    "queue_job": "actions.queue_job",
}

#: A fixed clock: the instant the default event occurred.
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

_EVENT: dict[str, Any] = {
    "event_id": "evt-1",
    "event_type": "ADD_ARTIFACT_ALIAS",
    "occurred_at": "2026-11-26T10:00:00Z",
    "author": "alice",
    "entity": "acme",
    "project": "wandb-registry-model",
    "registry": "model",
    "artifact": {
        "collection": "mnist-classifier",
        "type": "model",
        "version": 3,
        "digest": "9a1b",
        "aliases": ["latest", "production"],
        "tags": ["baseline"],
        "metadata": {"accuracy": 0.93, "framework": "torch"},
    },
    "alias": "production",
}

_AUTOMATION: dict[str, Any] = {
    "id": "deploy-on-production",
    "name": "Deploy when production alias is added",
    "event": "ADD_ARTIFACT_ALIAS",
    "scope": {"type": "registry", "entity": "acme", "registry": "model"},
    "action": {
        "type": "webhook",
        "url": "https://ci.example.com/hooks/deploy",
        "payload": '{"model": "${artifact_version_string}"}',
    },
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`; None removes a key, metadata is replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and key != "metadata":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def event_dict(**overrides: Any) -> dict[str, Any]:
    """A valid registry ADD_ARTIFACT_ALIAS event as a dict, with overrides (None drops)."""
    return merge(_EVENT, overrides)


def event_bytes(**overrides: Any) -> bytes:
    """`event_dict` as JSON bytes."""
    return dumps(event_dict(**overrides))


def make_event(**overrides: Any) -> Event:
    """A validated Event; e.g. make_event(registry=None, project="vision")."""
    event, _ = parse_event(event_bytes(**overrides), 1 << 20)
    return event


def automation_dict(**overrides: Any) -> dict[str, Any]:
    """The example automation as JSON, with overrides merged in."""
    return merge(_AUTOMATION, overrides)


def make_automation(**overrides: Any) -> Automation:
    """A validated Automation (registry webhook on ADD_ARTIFACT_ALIAS), with overrides."""
    data = merge(_AUTOMATION, overrides)
    if "scope" in overrides:
        data["scope"] = overrides["scope"]
    if "action" in overrides:
        data["action"] = overrides["action"]
    return parse_automation(data)
