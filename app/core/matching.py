"""Which automations an event triggers: a scope index, compiled filters, compiled actions.

The index is a dict keyed by (event type, scope), keys from app.core.scopes: an event
looks up exactly two keys (its registry or project, and its collection), so its cost does
not grow with the automations of other scopes. Disabled automations are kept but never indexed.

A scope shared by many automations (a registry watched by hundreds of teams) is
indexed once more by each filter's *guard*: a field the filter needs to hold one of a
few strings, or to start with a literal prefix (``{"alias": "production"}``,
``{"collection": {"$in": [...]}}``, ``{"alias": {"$regex": "^prod"}}``). An event then
evaluates only the filters whose guard it meets, plus those without a guard. A guard
is a necessary condition derived from the filter, never a replacement for it: every
candidate's full filter still decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.contract.automations import (
    Automation,
    KafkaAction,
    NotificationAction,
    QueueJobAction,
    WebhookAction,
)
from app.contract.events import Event
from app.core.documents import filter_document
from app.core.scopes import IndexKey, event_keys, index_key
from app.errors import FilterError, InvalidAutomationError, TemplateError
from app.lang.filters import MISSING, CompiledFilter, compile_filter, metadata_value
from app.lang.templating import compile_template, compile_tree

__all__ = [
    "AutomationIndex",
    "CompiledAutomation",
    "Guard",
    "filter_guard",
]

ActionRenderer = Callable[[Mapping[str, str]], dict[str, Any]]


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


# Scalar or list-of-string fields of filter_document a guard may name (and metadata.*).
_GUARD_FIELDS = frozenset({"alias", "tag", "collection", "author", "type", "aliases", "tags"})
# RE2 metacharacters: a pattern's literal prefix ends before the first of them.
_REGEX_META = frozenset("\\^$.|?*+()[]{}")
# Buckets up to this size are scanned whole: a guard lookup would cost as much.
_SCAN_MAX = 8


@dataclass(frozen=True, slots=True)
class Guard:
    """A filter matches only if `field` holds a string in `exact` or starting with a prefix."""

    field: str
    exact: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()

    @property
    def size(self) -> int:
        """How many values the guard admits: fewer is more selective."""
        return len(self.exact) + len(self.prefixes)


def _literal_prefix(pattern: str) -> str:
    """The literal text a `^`-anchored RE2 pattern without alternation must start with."""
    if not pattern.startswith("^") or "|" in pattern:
        return ""
    run: list[str] = []
    for char in pattern[1:]:
        if char in _REGEX_META:
            if char in "?*{" and run:
                run.pop()  # the quantifier makes the last literal character optional
            break
        run.append(char)
    return "".join(run)


def _op_guard(field: str, op: str, operand: Any, options: Any) -> Guard | None:
    if op == "$eq" and type(operand) is str:
        return Guard(field, frozenset({operand}))
    if op == "$in" and operand and all(type(x) is str for x in operand):
        return Guard(field, frozenset(operand))
    if op == "$all" and operand and type(operand[0]) is str:
        return Guard(field, frozenset({operand[0]}))
    if op == "$regex" and type(operand) is str and not options:
        prefix = _literal_prefix(operand)
        if prefix:
            return Guard(field, prefixes=frozenset({prefix}))
    return None


def _best(guards: Iterable[Guard | None]) -> Guard | None:
    best: Guard | None = None
    for guard in guards:
        if guard is not None and (best is None or guard.size < best.size):
            best = guard
    return best


def _field_guard(field: str, value: Any) -> Guard | None:
    if field not in _GUARD_FIELDS and not field.startswith("metadata."):
        return None
    if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
        # Every operator must hold, so any one of them gives a guard.
        options = value.get("$options")
        return _best(_op_guard(field, op, arg, options) for op, arg in value.items())
    return Guard(field, frozenset({value})) if type(value) is str else None


def filter_guard(spec: Mapping[str, Any] | None) -> Guard | None:
    """A necessary condition of a (valid) filter on one field, or None when it has none."""
    if not isinstance(spec, Mapping):
        return None
    guards: list[Guard | None] = []
    for key, value in spec.items():
        if key == "$and" and isinstance(value, list | tuple):
            guards.append(_best(filter_guard(child) for child in value))
        elif key == "$or" and isinstance(value, list | tuple) and value:
            # Each branch needs a guard on the same field; their union is the guard.
            branches = [filter_guard(child) for child in value]
            first = branches[0]
            if first is not None and all(
                b is not None and b.field == first.field for b in branches
            ):
                guards.append(
                    Guard(
                        first.field,
                        frozenset().union(*(b.exact for b in branches if b is not None)),
                        frozenset().union(*(b.prefixes for b in branches if b is not None)),
                    )
                )
        elif not key.startswith("$"):
            guards.append(_field_guard(key, value))
    return _best(guards)


def _guard_values(doc: Mapping[str, Any], field: str) -> tuple[str, ...]:
    """The strings a guard sees in a filter document: a scalar, or a list's elements."""
    if field.startswith("metadata."):
        metadata = doc.get("metadata")
        value = (
            metadata_value(metadata, field[len("metadata.") :])
            if type(metadata) is dict
            else MISSING
        )
    else:
        value = doc.get(field, MISSING)
    if type(value) is str:
        return (value,)
    if type(value) is list:
        return tuple(v for v in value if type(v) is str)
    return ()


class _Bucket:
    """The enabled automations of one index key, in id order, with their guards indexed."""

    __slots__ = ("by_prefix", "by_value", "members", "scan", "unguarded")

    def __init__(self, members: tuple[CompiledAutomation, ...]) -> None:
        self.members = members
        self.scan = len(members) <= _SCAN_MAX
        # (position, automation): positions keep results in id order.
        self.unguarded: list[tuple[int, CompiledAutomation]] = []
        self.by_value: dict[str, dict[str, list[tuple[int, CompiledAutomation]]]] = {}
        # field -> prefix length -> prefix -> automations
        self.by_prefix: dict[str, dict[int, dict[str, list[tuple[int, CompiledAutomation]]]]] = {}
        if self.scan:
            return
        for position, compiled in enumerate(members):
            entry = (position, compiled)
            guard = compiled.guard
            if guard is None:
                self.unguarded.append(entry)
                continue
            values = self.by_value.setdefault(guard.field, {})
            for value in guard.exact:
                values.setdefault(value, []).append(entry)
            lengths = self.by_prefix.setdefault(guard.field, {})
            for prefix in guard.prefixes:
                lengths.setdefault(len(prefix), {}).setdefault(prefix, []).append(entry)

    def collect(self, doc: Mapping[str, Any], out: list[CompiledAutomation]) -> None:
        """Append the members whose filter matches `doc`, in id order."""
        if self.scan:
            for compiled in self.members:
                if compiled.filter.matches(doc):
                    out.append(compiled)
            return
        hits = list(self.unguarded)
        for name, table in self.by_value.items():
            for value in _guard_values(doc, name):
                found = table.get(value)
                if found:
                    hits.extend(found)
        for name, lengths in self.by_prefix.items():
            for value in _guard_values(doc, name):
                for length, table in lengths.items():
                    found = table.get(value[:length])
                    if found:
                        hits.extend(found)
        if len(hits) > 1:
            # An automation may be reached through several values: once, in id order.
            hits = sorted(dict(hits).items())
        for _, compiled in hits:
            if compiled.filter.matches(doc):
                out.append(compiled)


class CompiledAutomation:
    """An automation with its filter and action templates compiled once."""

    __slots__ = (
        "_render",
        "action_type",
        "automation",
        "enabled",
        "filter",
        "guard",
        "id",
        "key",
        "name",
        "revision",
    )

    def __init__(self, automation: Automation) -> None:
        """Compile; raises InvalidAutomationError (only for automations built unvalidated)."""
        # A run automation's filter is the SDK's run-event filter (app.core.runs
        # compiles it); in this index it only needs its key, never seen by an event.
        event_filter = None if automation.is_run_automation else automation.filter
        try:
            self.filter: CompiledFilter = compile_filter(event_filter)
        except FilterError as exc:
            path = f"filter.{exc.path}" if exc.path else "filter"
            raise InvalidAutomationError([(path, exc.reason)]) from None
        try:
            self._render = _action_renderer(automation)
        except TemplateError as exc:
            raise InvalidAutomationError([("action", str(exc))]) from None
        self.automation = automation
        self.guard = filter_guard(event_filter)
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

    # Buckets are built lazily: an upsert or removal only edits the key's members and
    # marks it stale, and the next match rebuilds each stale bucket once. Loading N
    # automations of one scope (a worker's start, a bulk apply) is then O(N log N), not
    # a bucket rebuild per automation.
    __slots__ = ("_buckets", "_by_id", "_members_of", "_stale")

    def __init__(self, automations: Iterable[Automation | CompiledAutomation] = ()) -> None:
        self._by_id: dict[str, CompiledAutomation] = {}
        self._members_of: dict[IndexKey, dict[str, CompiledAutomation]] = {}
        self._buckets: dict[IndexKey, _Bucket] = {}
        self._stale: set[IndexKey] = set()
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
            self._members_of.setdefault(compiled.key, {})[compiled.id] = compiled
            self._stale.add(compiled.key)
        return compiled

    def _members(self, key: IndexKey) -> tuple[CompiledAutomation, ...]:
        if self._stale:
            self._refresh()
        bucket = self._buckets.get(key)
        return () if bucket is None else bucket.members

    def _refresh(self) -> None:
        """Rebuild every stale bucket (members in id order)."""
        for key in self._stale:
            members = self._members_of.get(key)
            if members:
                ordered = tuple(members[i] for i in sorted(members))
                self._buckets[key] = _Bucket(ordered)
            else:
                self._members_of.pop(key, None)
                self._buckets.pop(key, None)
        self._stale.clear()

    def remove(self, automation_id: str) -> CompiledAutomation | None:
        """Drop an automation; returns it, or None when unknown."""
        old = self._by_id.pop(automation_id, None)
        if old is not None:
            self._unindex(old)
        return old

    def _unindex(self, compiled: CompiledAutomation) -> None:
        members = self._members_of.get(compiled.key)
        if members is not None and members.get(compiled.id) is compiled:
            del members[compiled.id]
            self._stale.add(compiled.key)

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
        entity, wide, narrow = event_keys(event)
        return self._members(entity) + self._members(wide) + self._members(narrow)

    def match(self, event: Event, doc: Mapping[str, Any] | None = None) -> list[CompiledAutomation]:
        """Candidates whose filter matches; `doc` is filter_document(event) when given."""
        entity, wide, narrow = event_keys(event)
        if self._stale:
            self._refresh()
        buckets = self._buckets
        zeroth = buckets.get(entity)
        first = buckets.get(wide)
        second = buckets.get(narrow)
        if zeroth is None and first is None and second is None:
            return []
        if doc is None:
            doc = filter_document(event)
        out: list[CompiledAutomation] = []
        if zeroth is not None:
            zeroth.collect(doc, out)
        if first is not None:
            first.collect(doc, out)
        if second is not None:
            second.collect(doc, out)
        return out
