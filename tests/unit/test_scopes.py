"""app.core.scopes: index keys, mismatches, example places and fields agree on every scope."""

from __future__ import annotations

from typing import Any

import pytest

from app.contract.events import Event
from app.core.scopes import (
    event_keys,
    index_key,
    registry_project,
    scope_fields,
    scope_mismatches,
    scope_place,
)
from tests.factories import make_automation, make_event

SCOPES: list[dict[str, Any]] = [
    {"type": "project", "entity": "acme", "project": "vision"},
    {"type": "registry", "entity": "acme", "registry": "model"},
    {"type": "artifact_collection", "entity": "acme", "project": "vision", "collection": "mnist"},
    {"type": "artifact_collection", "entity": "acme", "registry": "model", "collection": "mnist"},
    {"type": "entity", "entity": "acme"},
]


def _event_inside(scope: dict[str, Any]) -> Event:
    """The factory event moved to the example place of the scope."""
    automation = make_automation(scope=scope)
    place = scope_place(automation.scope)
    # registry=None drops the factory's registry: a project event.
    return make_event(
        entity=place["entity"],
        project=place["project"],
        registry=place.get("registry"),
        artifact={"collection": place["collection"]},
    )


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: f"{s['type']}-{len(s)}")
def test_an_event_at_the_scope_place_is_inside_it(scope: dict[str, Any]) -> None:
    """The example place is inside the scope: no mismatch, and its keys hold the index key."""
    automation = make_automation(scope=scope)
    event = _event_inside(scope)
    assert scope_mismatches(automation.scope, event) == []
    assert index_key(automation.event, automation.scope) in event_keys(event)


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: f"{s['type']}-{len(s)}")
def test_an_event_of_another_entity_is_outside(scope: dict[str, Any]) -> None:
    """Another entity: a mismatch that names it, and none of the event's keys is the index key."""
    automation = make_automation(scope=scope)
    event = _event_inside(scope).model_copy(update={"entity": "other"})
    assert any("entity" in reason for reason in scope_mismatches(automation.scope, event))
    assert index_key(automation.event, automation.scope) not in event_keys(event)


def test_scope_fields_and_registry_project() -> None:
    """Fields a list filters by: absent parts are None; a registry's project is W&B's name."""
    registry = make_automation(scope=SCOPES[1]).scope
    assert scope_fields(registry) == {
        "type": "registry",
        "entity": "acme",
        "project": None,
        "registry": "model",
        "collection": None,
    }
    assert scope_place(registry)["project"] == registry_project("model") == "wandb-registry-model"
