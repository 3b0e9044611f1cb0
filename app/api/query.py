"""Query parameters of GET /automations: parsed strictly, applied to the rule book's list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.api.problems import ApiError
from app.contract.automations import AUTOMATION_EVENT_TYPES, SCOPE_TYPES, Automation
from app.contract.events import EventType
from app.contract.runs import RunEventType
from app.core.scopes import scope_fields

__all__ = ["LIST_PARAMETERS", "AutomationQuery", "parse_query", "select"]

LIST_PARAMETERS: dict[str, str] = {
    "event": "event type (LINK_MODEL is read as LINK_ARTIFACT)",
    "scope_type": "project, registry, artifact_collection or entity",
    "entity": "scope entity",
    "project": "scope project (project scopes and project collections)",
    "registry": "scope registry (registry scopes and registered models)",
    "collection": "scope collection (artifact_collection scopes)",
    "action_type": "webhook, notification, queue_job, kafka or no_op",
    "enabled": "true or false",
    "q": "text search: every word must occur in the id, name, description or scope",
}

_EVENT_TYPES = {t.value: t for t in AUTOMATION_EVENT_TYPES}
_SCOPE_TYPES = frozenset(SCOPE_TYPES)
_ACTION_TYPES = frozenset({"webhook", "notification", "queue_job", "kafka", "no_op"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True, slots=True)
class AutomationQuery:
    """Every filter of a list request; None means "any"."""

    event: EventType | RunEventType | None = None
    scope_type: str | None = None
    entity: str | None = None
    project: str | None = None
    registry: str | None = None
    collection: str | None = None
    action_type: str | None = None
    enabled: bool | None = None
    # Lower-cased words, each of which must occur in the automation's searchable text.
    words: tuple[str, ...] = ()


def _one_of(name: str, value: str, allowed: Iterable[str]) -> str:
    choices = sorted(allowed)
    if value not in choices:
        raise ApiError(
            400, f"query parameter {name}={value!r}: expected one of {', '.join(choices)}"
        )
    return value


def parse_query(params: Mapping[str, str]) -> AutomationQuery:
    """Read the query string; raises ApiError 400 naming an unknown parameter or bad value."""
    unknown = sorted(set(params) - set(LIST_PARAMETERS))
    if unknown:
        raise ApiError(
            400,
            f"unknown query parameter {', '.join(unknown)}; known: {', '.join(LIST_PARAMETERS)}",
        )
    event: EventType | RunEventType | None = None
    if "event" in params:
        raw = "LINK_ARTIFACT" if params["event"] == "LINK_MODEL" else params["event"]
        event = _EVENT_TYPES[_one_of("event", raw, _EVENT_TYPES)]
    enabled: bool | None = None
    if "enabled" in params:
        flag = params["enabled"].lower()
        if flag not in _BOOLEANS:
            raise ApiError(
                400, f"query parameter enabled={params['enabled']!r}: expected true or false"
            )
        enabled = _BOOLEANS[flag]
    scope_type = params.get("scope_type")
    if scope_type is not None:
        _one_of("scope_type", scope_type, _SCOPE_TYPES)
    action_type = params.get("action_type")
    if action_type is not None:
        _one_of("action_type", action_type, _ACTION_TYPES)
    return AutomationQuery(
        event=event,
        scope_type=scope_type,
        entity=params.get("entity"),
        project=params.get("project"),
        registry=params.get("registry"),
        collection=params.get("collection"),
        action_type=action_type,
        enabled=enabled,
        words=tuple(params.get("q", "").lower().split()),
    )


def _text(automation: Automation) -> str:
    # A pydantic model keeps its field values in __dict__: the scope's type and names.
    scope = vars(automation.scope).values()
    parts = (automation.id, automation.name, automation.description or "", *scope)
    return " ".join(str(part) for part in parts if part).lower()


_SCOPE_FILTERS = ("scope_type", "entity", "project", "registry", "collection")


def _keeps(query: AutomationQuery, automation: Automation, by_scope: bool) -> bool:
    plain: tuple[tuple[object, object], ...] = (
        (query.event, automation.event),
        (query.action_type, automation.action.type),
        (query.enabled, automation.enabled),
    )
    if not all(wanted is None or wanted == actual for wanted, actual in plain):
        return False
    if by_scope:
        scope = scope_fields(automation.scope)
        wanted_scope = (
            (query.scope_type, scope["type"]),
            (query.entity, scope["entity"]),
            (query.project, scope["project"]),
            (query.registry, scope["registry"]),
            (query.collection, scope["collection"]),
        )
        if not all(wanted is None or wanted == actual for wanted, actual in wanted_scope):
            return False
    if query.words:
        text = _text(automation)
        return all(word in text for word in query.words)
    return True


def select(automations: Iterable[Automation], query: AutomationQuery) -> list[Automation]:
    """The automations every filter keeps, by id."""
    # scope_fields costs ~15 us an automation (pydantic's missing-attribute path): a
    # console page over 10,000 automations reads it only when a filter needs it.
    by_scope = any(getattr(query, name) is not None for name in _SCOPE_FILTERS)
    return sorted((a for a in automations if _keeps(query, a, by_scope)), key=lambda a: a.id)
