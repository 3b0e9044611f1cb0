"""Which automations an event triggers: a scope index, compiled filters, compiled actions.

The index is a dict keyed by (event type, scope): an event looks up exactly two keys
(its registry or project, and its collection), so its cost does not grow with the
automations of other scopes. Disabled automations are kept but never indexed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import FilterError, InvalidAutomationError, TemplateError
from app.filters import CompiledFilter, compile_filter, filter_document
from app.models import (
    ArtifactCollectionScope,
    Automation,
    Event,
    EventType,
    KafkaAction,
    NotificationAction,
    ProjectScope,
    QueueJobAction,
    RegistryScope,
    WebhookAction,
)
from app.templating import compile_template, compile_tree

__all__ = [
    "AutomationIndex",
    "CompiledAutomation",
    "Explanation",
    "IndexKey",
    "event_keys",
    "explain",
    "index_key",
    "scope_mismatches",
]

IndexKey = tuple[str, ...]
ActionRenderer = Callable[[Mapping[str, str]], dict[str, Any]]

ProjectOrRegistryScope = ProjectScope | RegistryScope | ArtifactCollectionScope


def index_key(event_type: EventType, scope: ProjectOrRegistryScope) -> IndexKey:
    """The index key of an automation: event type plus scope."""
    if isinstance(scope, ProjectScope):
        return (event_type.value, "project", scope.entity, scope.project)
    if isinstance(scope, RegistryScope):
        return (event_type.value, "registry", scope.entity, scope.registry)
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


def event_keys(event: Event) -> tuple[IndexKey, IndexKey]:
    """The two index keys an event can match: its registry or project, and its collection."""
    kind = event.event_type.value
    collection = event.artifact.collection
    registry = event.registry
    if registry is not None:
        return (
            (kind, "registry", event.entity, registry),
            (kind, "collection", event.entity, "registry", registry, collection),
        )
    return (
        (kind, "project", event.entity, event.project),
        (kind, "collection", event.entity, "project", event.project, collection),
    )


def _webhook(action: WebhookAction) -> ActionRenderer:
    payload = compile_template(action.payload, json_context=True).render
    headers = [
        (name, compile_template(value, single_line=True).render)
        for name, value in (action.headers or {}).items()
    ]
    url, secret, token = action.url, action.secret, action.access_token

    def render(variables: Mapping[str, str]) -> dict[str, Any]:
        return {
            "url": url,
            "payload": payload(variables),
            "headers": {name: header(variables) for name, header in headers},
            "secret": secret,
            "access_token": token,
        }

    return render


def _notification(action: NotificationAction) -> ActionRenderer:
    title = compile_template(action.title).render
    message = compile_template(action.message).render
    channel, severity = action.channel, action.severity

    def render(variables: Mapping[str, str]) -> dict[str, Any]:
        return {
            "channel": channel,
            "title": title(variables),
            "message": message(variables),
            "severity": severity,
        }

    return render


def _queue_job(action: QueueJobAction) -> ActionRenderer:
    config = compile_tree(action.config)
    queue, job = action.queue, action.job

    def render(variables: Mapping[str, str]) -> dict[str, Any]:
        return {"queue": queue, "job": job, "config": config(variables)}

    return render


def _kafka(action: KafkaAction) -> ActionRenderer:
    payload = compile_template(action.payload, json_context=True).render
    topic = action.topic

    def render(variables: Mapping[str, str]) -> dict[str, Any]:
        return {"topic": topic, "payload": payload(variables)}

    return render


def _no_op(variables: Mapping[str, str]) -> dict[str, Any]:
    return {}


def _action_renderer(automation: Automation) -> ActionRenderer:
    action = automation.action
    if isinstance(action, WebhookAction):
        return _webhook(action)
    if isinstance(action, NotificationAction):
        return _notification(action)
    if isinstance(action, QueueJobAction):
        return _queue_job(action)
    if isinstance(action, KafkaAction):
        return _kafka(action)
    return _no_op


class CompiledAutomation:
    """An automation with its filter and action templates compiled once."""

    __slots__ = (
        "_render",
        "action_type",
        "automation",
        "enabled",
        "filter",
        "id",
        "key",
        "name",
        "revision",
    )

    def __init__(self, automation: Automation) -> None:
        """Compile; raises InvalidAutomationError (only for automations built unvalidated)."""
        try:
            self.filter: CompiledFilter = compile_filter(automation.filter)
        except FilterError as exc:
            path = f"filter.{exc.path}" if exc.path else "filter"
            raise InvalidAutomationError([(path, exc.reason)]) from None
        try:
            self._render = _action_renderer(automation)
        except TemplateError as exc:
            raise InvalidAutomationError([("action", str(exc))]) from None
        self.automation = automation
        self.id = automation.id
        self.name = automation.name
        self.revision = automation.revision
        self.enabled = automation.enabled
        self.action_type: str = automation.action.type
        self.key = index_key(automation.event, automation.scope)

    def render_action(self, variables: Mapping[str, str]) -> dict[str, Any]:
        """The action with every template rendered (secrets stay names)."""
        return self._render(variables)

    def matches(self, event: Event, doc: Mapping[str, Any] | None = None) -> bool:
        """The full decision for one automation: enabled, event type, scope and filter."""
        if not self.enabled or self.key not in event_keys(event):
            return False
        return self.filter.matches(filter_document(event) if doc is None else doc)

    def __repr__(self) -> str:
        return f"CompiledAutomation({self.id!r}, revision={self.revision})"


class AutomationIndex:
    """Every automation a worker knows, indexed by (event type, scope)."""

    __slots__ = ("_buckets", "_by_id")

    def __init__(self, automations: Iterable[Automation | CompiledAutomation] = ()) -> None:
        self._by_id: dict[str, CompiledAutomation] = {}
        self._buckets: dict[IndexKey, tuple[CompiledAutomation, ...]] = {}
        for automation in automations:
            self.upsert(automation)

    def upsert(self, automation: Automation | CompiledAutomation) -> CompiledAutomation:
        """Add or replace (by id); raises InvalidAutomationError if it does not compile."""
        compiled = (
            automation
            if isinstance(automation, CompiledAutomation)
            else CompiledAutomation(automation)
        )
        old = self._by_id.get(compiled.id)
        if old is not None:
            self._unindex(old)
        self._by_id[compiled.id] = compiled
        if compiled.enabled:
            bucket = (*self._buckets.get(compiled.key, ()), compiled)
            self._buckets[compiled.key] = tuple(sorted(bucket, key=lambda c: c.id))
        return compiled

    def remove(self, automation_id: str) -> CompiledAutomation | None:
        """Drop an automation; returns it, or None when unknown."""
        old = self._by_id.pop(automation_id, None)
        if old is not None:
            self._unindex(old)
        return old

    def _unindex(self, compiled: CompiledAutomation) -> None:
        bucket = tuple(c for c in self._buckets.get(compiled.key, ()) if c is not compiled)
        if bucket:
            self._buckets[compiled.key] = bucket
        else:
            self._buckets.pop(compiled.key, None)

    def get(self, automation_id: str) -> CompiledAutomation | None:
        """The automation with this id, or None."""
        return self._by_id.get(automation_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[CompiledAutomation]:
        return iter(list(self._by_id.values()))

    def __contains__(self, automation_id: object) -> bool:
        return automation_id in self._by_id

    def candidates(self, event: Event) -> Sequence[CompiledAutomation]:
        """Enabled automations of the event's type whose scope contains the event."""
        wide, narrow = event_keys(event)
        buckets = self._buckets
        first = buckets.get(wide, ())
        second = buckets.get(narrow, ())
        if not second:
            return first
        if not first:
            return second
        return first + second

    def match(self, event: Event, doc: Mapping[str, Any] | None = None) -> list[CompiledAutomation]:
        """Candidates whose filter matches; `doc` is filter_document(event) when given."""
        candidates = self.candidates(event)
        if not candidates:
            return []
        if doc is None:
            doc = filter_document(event)
        return [c for c in candidates if c.filter.matches(doc)]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Whether an automation fires for an event, and every reason why not."""

    automation_id: str
    matched: bool
    reasons: list[str] = field(default_factory=list)


def _differs(out: list[str], what: str, expected: str | None, actual: str | None) -> None:
    if expected != actual:
        out.append(f"scope {what} is '{expected}' but the event's {what} is '{actual}'")


def scope_mismatches(scope: ProjectOrRegistryScope, event: Event) -> list[str]:
    """Every way the event lies outside the scope (empty when inside)."""
    out: list[str] = []
    registry = event.registry
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


def explain(
    target: CompiledAutomation | Automation, event: Event, doc: Mapping[str, Any] | None = None
) -> Explanation:
    """Why an automation does or does not fire for an event (for dry runs)."""
    compiled = target if isinstance(target, CompiledAutomation) else CompiledAutomation(target)
    automation = compiled.automation
    reasons: list[str] = []
    if not automation.enabled:
        reasons.append("automation is disabled")
    if automation.event is not event.event_type:
        reasons.append(
            f"event type is {event.event_type.value} but the automation listens for "
            f"{automation.event.value}"
        )
    reasons.extend(scope_mismatches(automation.scope, event))
    if doc is None:
        doc = filter_document(event)
    reasons.extend(compiled.filter.explain(doc))
    return Explanation(automation.id, not reasons, reasons)
