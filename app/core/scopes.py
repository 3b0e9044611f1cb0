"""Scopes: the one place that knows how an automation's scope and an event's place relate.

The automation index keys (`index_key` of an automation, the three `event_keys` of an event),
the dry run's reasons an event is outside a scope (`scope_mismatches`), where an example
event inside a scope sits (`scope_place`), and the fields the API filters a list by
(`scope_fields`).
"""

from __future__ import annotations

from typing import Any

from app.contract.automations import (
    ArtifactCollectionScope,
    EntityScope,
    ProjectScope,
    RegistryScope,
)
from app.contract.events import Event, EventType
from app.contract.runs import RunEventType

__all__ = [
    "AnyScope",
    "IndexKey",
    "event_keys",
    "index_key",
    "registry_project",
    "scope_fields",
    "scope_mismatches",
    "scope_place",
]

IndexKey = tuple[str, ...]
# The scope models, not the contract's discriminated `Scope` (an Annotated for pydantic).
AnyScope = ProjectScope | RegistryScope | ArtifactCollectionScope | EntityScope


def index_key(event_type: EventType | RunEventType, scope: AnyScope) -> IndexKey:
    """The index key of an automation: event type plus scope."""
    if isinstance(scope, ProjectScope):
        return (event_type.value, "project", scope.entity, scope.project)
    if isinstance(scope, RegistryScope):
        return (event_type.value, "registry", scope.entity, scope.registry)
    if isinstance(scope, EntityScope):
        return (event_type.value, "entity", scope.entity)
    if scope.registry is not None:
        return (
            event_type.value,
            "collection",
            scope.entity,
            "registry",
            scope.registry,
            scope.collection,
        )
    return (
        event_type.value,
        "collection",
        scope.entity,
        "project",
        scope.project or "",
        scope.collection,
    )


def event_keys(event: Event) -> tuple[IndexKey, IndexKey, IndexKey]:
    """The index keys an event can match: its entity, its registry or project, its collection."""
    kind = event.event_type.value
    collection = event.artifact.collection
    registry = event.registry
    entity = (kind, "entity", event.entity)
    if registry is not None:
        return (
            entity,
            (kind, "registry", event.entity, registry),
            (kind, "collection", event.entity, "registry", registry, collection),
        )
    return (
        entity,
        (kind, "project", event.entity, event.project),
        (kind, "collection", event.entity, "project", event.project, collection),
    )


def _differs(out: list[str], what: str, expected: str | None, actual: str | None) -> None:
    if expected != actual:
        out.append(f"scope {what} is '{expected}' but the event's {what} is '{actual}'")


def scope_mismatches(scope: AnyScope, event: Event) -> list[str]:
    """Every way the event lies outside the scope (empty when inside)."""
    out: list[str] = []
    registry = event.registry
    if isinstance(scope, EntityScope):
        _differs(out, "entity", scope.entity, event.entity)
        return out
    if isinstance(scope, ProjectScope):
        if registry is not None:
            out.append(
                f"scope is project '{scope.entity}/{scope.project}' but the event is a "
                f"registry event (registry '{registry}'); project automations never see "
                "registry events"
            )
            return out
        _differs(out, "entity", scope.entity, event.entity)
        _differs(out, "project", scope.project, event.project)
        return out
    if isinstance(scope, RegistryScope):
        if registry is None:
            out.append(
                f"scope is registry '{scope.registry}' but the event is a project event "
                f"(no registry; project '{event.project}')"
            )
            return out
        _differs(out, "entity", scope.entity, event.entity)
        _differs(out, "registry", scope.registry, registry)
        return out
    if scope.registry is not None:
        if registry is None:
            out.append(
                f"scope is collection '{scope.collection}' of registry '{scope.registry}' but "
                f"the event is a project event (no registry; project '{event.project}')"
            )
            return out
        _differs(out, "entity", scope.entity, event.entity)
        _differs(out, "registry", scope.registry, registry)
    else:
        if registry is not None:
            out.append(
                f"scope is collection '{scope.collection}' of project '{scope.project}' but "
                f"the event is a registry event (registry '{registry}')"
            )
            return out
        _differs(out, "entity", scope.entity, event.entity)
        _differs(out, "project", scope.project, event.project)
    _differs(out, "collection", scope.collection, event.artifact.collection)
    return out


def registry_project(registry: str) -> str:
    """The project W&B gives a registry's collections: ``wandb-registry-<name>``."""
    return f"wandb-registry-{registry}"


def scope_place(scope: AnyScope) -> dict[str, Any]:
    """Where an example event inside the scope sits: entity, project, registry, collection."""
    if isinstance(scope, ProjectScope):
        return {
            "entity": scope.entity,
            "project": scope.project,
            "collection": "example-collection",
        }
    if isinstance(scope, RegistryScope):
        return {
            "entity": scope.entity,
            "project": registry_project(scope.registry),
            "registry": scope.registry,
            "collection": "example-model",
        }
    if isinstance(scope, EntityScope):
        return {"entity": scope.entity, "project": "example-project", "collection": "example-model"}
    assert isinstance(scope, ArtifactCollectionScope)
    if scope.registry is not None:
        return {
            "entity": scope.entity,
            "project": registry_project(scope.registry),
            "registry": scope.registry,
            "collection": scope.collection,
        }
    return {"entity": scope.entity, "project": scope.project, "collection": scope.collection}


def scope_fields(scope: AnyScope) -> dict[str, str | None]:
    """type, entity, project, registry and collection of a scope (None where it has none)."""
    return {
        "type": scope.type,
        "entity": scope.entity,
        "project": getattr(scope, "project", None),
        "registry": getattr(scope, "registry", None),
        "collection": getattr(scope, "collection", None),
    }
