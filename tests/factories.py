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
    "run_automation_dict",
    "run_metric_bytes",
    "run_metric_dict",
    "run_state_bytes",
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


# Run events (issue 14).
_RUN: dict[str, Any] = {
    "id": "run-1",
    "name": "bright-sun-1",
    "user": "alice",
    "tags": ["baseline"],
    "config": {"lr": 0.01, "optimizer": {"name": "adam"}},
    "state": "running",
}


def run_metric_dict(step: int, metrics: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A RUN_METRIC record of run-1 in acme/mnist, one second per step from NOW."""
    base: dict[str, Any] = {
        "event_type": "RUN_METRIC",
        "occurred_at": f"2026-11-26T10:{step // 60 % 60:02d}:{step % 60:02d}Z",
        "entity": "acme",
        "project": "mnist",
        "run": copy.deepcopy(_RUN),
        "step": step,
        "metrics": metrics,
    }
    return merge(base, overrides)


def run_metric_bytes(step: int, metrics: dict[str, Any], **overrides: Any) -> bytes:
    """A RUN_METRIC record as bytes."""
    return dumps(run_metric_dict(step, metrics, **overrides))


def run_state_bytes(state: str, **overrides: Any) -> bytes:
    """A RUN_STATE record of run-1 in acme/mnist."""
    base: dict[str, Any] = {
        "event_type": "RUN_STATE",
        "occurred_at": "2026-11-26T11:00:00Z",
        "entity": "acme",
        "project": "mnist",
        "run": copy.deepcopy(_RUN),
        "state": state,
    }
    return dumps(merge(base, overrides))


def run_automation_dict(
    run_filter: dict[str, Any], event: str = "RUN_METRIC", **overrides: Any
) -> dict[str, Any]:
    """A run automation on project acme/mnist with a webhook that names the metric."""
    base: dict[str, Any] = {
        "id": "loss-watch",
        "name": "Loss watch",
        "event": event,
        "scope": {"type": "project", "entity": "acme", "project": "mnist"},
        "filter": run_filter,
        "action": {
            "type": "webhook",
            "url": "https://ci.example.com/hooks/run",
            "payload": '{"run": "${run_name}", "metric": "${metric_name}", '
            '"value": "${metric_value}", "step": "${step}"}',
        },
    }
    return merge(base, overrides)
