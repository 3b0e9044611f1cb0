"""The one code path from a raw event to action jobs, shared by the workers and `evaluate`.

`Pipeline.process` never raises for bad input: a message that is not a valid event
becomes a dead-letter record. Alias pointers (per collection: alias -> version) are
read before and written after each event, so ``previous_version`` of an
``ADD_ARTIFACT_ALIAS`` job is the version the alias pointed to before, and of a
``REMOVE_ARTIFACT_ALIAS`` job the version it pointed to when it was removed. A redelivered
event yields the same ``job_id`` (its ``previous_version`` may then equal the new
version: consumers deduplicate by ``job_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from app.contract.automations import Automation, parse_automation
from app.contract.dead_letters import DeadLetter, DeadLetterCode, DeadLetterHeader
from app.contract.events import Event, EventType, parse_event
from app.contract.jobs import ActionJob, job_id, parse_action_job
from app.contract.timestamps import iso_z
from app.core.cloudevents import from_kafka, job_headers
from app.core.documents import filter_document, template_variables
from app.core.limits import RecordLimits
from app.core.matching import AutomationIndex, CompiledAutomation
from app.errors import ConfigError, InvalidAutomationError, InvalidEventError, JobTooLargeError
from app.lang.templating import TemplateVariables
from app.serialization import JSONDecodeError, dumps, loads
from app.settings import Settings, record_size_limit

__all__ = [
    "TOPIC_ACTION_TYPES",
    "AliasStore",
    "MemoryAliasStore",
    "MessageSource",
    "Outbound",
    "Pipeline",
    "ProcessResult",
    "SourceInfo",
    "alias_update",
    "automation_from_record",
    "unreadable_header",
    "update_alias_pointers",
]

# Action types routed to a fixed topic; `kafka` names its own, `no_op` has none.
TOPIC_ACTION_TYPES = ("webhook", "notification", "queue_job")


class AliasStore(Protocol):
    """Alias pointers per collection path; a Faust table wrapper or a dict wrapper."""

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """The pointers of one collection, or None."""
        ...

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers of one collection (a new dict, never mutated in place)."""
        ...


class MemoryAliasStore:
    """An in-memory AliasStore for `evaluate` and tests."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, dict[str, int]] = {}

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """The pointers of one collection, or None."""
        return self.data.get(collection_path)

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers of one collection."""
        self.data[collection_path] = dict(pointers)


Headers = Iterable[tuple[str | bytes, bytes | None]] | Mapping[str, bytes | None]


# Only a dead letter reads the source, so the worker passes Faust's message as it is
# instead of building a SourceInfo for every event.
class MessageSource(Protocol):
    """Where a message came from: a SourceInfo, or the consumed message itself."""

    @property
    def topic(self) -> str:
        """Source topic."""
        ...

    @property
    def partition(self) -> int:
        """Source partition."""
        ...

    @property
    def offset(self) -> int:
        """Offset in the source partition."""
        ...

    @property
    def key(self) -> bytes | None:
        """The message key."""
        ...

    @property
    def headers(self) -> Headers | None:
        """The message headers (None or empty when there are none)."""
        ...


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a message came from, for dead-letter records."""

    topic: str
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    headers: Headers | None = ()


@dataclass(slots=True)
class Outbound:
    """One record to produce: an action job for its topic, keyed by automation id.

    `action_type` and `automation_id` are plain fields so metrics need not touch `job`.
    """

    topic: str
    key: bytes
    value: bytes
    action_type: str
    automation_id: str
    # CloudEvents `ce_` headers when the automation's job_format asks for them.
    headers: list[tuple[str, bytes]] | None = None
    _job: ActionJob | None = field(default=None, repr=False, compare=False)

    @property
    def job(self) -> ActionJob:
        """The job as a typed model, parsed from `value` on first use (the hot path skips it)."""
        if self._job is None:
            self._job = parse_action_job(self.value)
        return self._job


@dataclass(slots=True)
class ProcessResult:
    """What one message produced; exactly one of `event` and `dead_letter` is set."""

    event: Event | None = None
    outbounds: list[Outbound] = field(default_factory=list)
    matched: list[CompiledAutomation] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    previous_version: int | None = None
    dead_letter: bytes | None = None
    dead_letter_record: DeadLetter | None = None
    # The dead letter's Kafka key: the original's, or None when it had to be cut.
    dead_letter_key: bytes | None = None
    reason: str | None = None
    error_code: str | None = None
    # Alias pointers of the event's collection dropped by the per-collection cap.
    aliases_dropped: int = 0


def _remove_alias_pointer(event: Event, store: AliasStore) -> int:
    """Drop the removed alias; returns the version it pointed to.

    That is the pointer's version, or the event's own version when the pointers never
    saw the alias (a redelivered removal therefore carries the same version again).
    """
    path = event.collection_path
    current = store.get(path)
    alias = event.alias or ""  # required on REMOVE_ARTIFACT_ALIAS events
    previous = current.get(alias) if current is not None else None
    if current is not None and previous is not None:
        pointers = dict(current)
        del pointers[alias]
        store.set(path, pointers)
    return event.artifact.version if previous is None else previous


def _unlink_pointers(event: Event, store: AliasStore) -> None:
    """An unlinked version leaves the collection, and every alias pointing to it with it."""
    path = event.collection_path
    current = store.get(path)
    if current is None:
        return
    version = event.artifact.version
    kept = {name: v for name, v in current.items() if v != version}
    if len(kept) != len(current):
        store.set(path, kept)


def update_alias_pointers(event: Event, store: AliasStore) -> int | None:
    """Record the event's aliases; returns the alias's previous version (None if new).

    ``ADD_ARTIFACT_ALIAS``: the version the added alias pointed to before;
    ``REMOVE_ARTIFACT_ALIAS``: the version the removed alias pointed to; ``UNLINK_ARTIFACT``
    drops the pointers to the unlinked version. Other events: None.
    """
    return alias_update(event, store, None)[0]


# The most a pointer can take in the state record: a 256-character alias of 4-byte
# characters, quotes, colon, comma and a 20-digit version.
_POINTER_BYTES = 256 * 4 + 24


def alias_update(
    event: Event, store: AliasStore, cap: int | None, max_bytes: int | None = None
) -> tuple[int | None, int]:
    """Record the event's aliases, keeping at most `cap` per collection (and `max_bytes`).

    Returns the added alias's previous version (None if new) and how many pointers the
    caps dropped: the ones set longest ago go first (the pointers are kept in the order
    they were last set), so aliases that move, such as `latest`, stay. Removals and
    unlinks (see `update_alias_pointers`) only take pointers away: they drop nothing.
    """
    kind = event.event_type
    if kind is EventType.REMOVE_ARTIFACT_ALIAS:
        return _remove_alias_pointer(event, store), 0
    if kind is EventType.UNLINK_ARTIFACT:
        _unlink_pointers(event, store)
        return None, 0
    path = event.collection_path
    current = store.get(path)
    alias = event.added_alias
    previous = current.get(alias) if current is not None and alias is not None else None
    version = event.artifact.version
    names = list(event.artifact.aliases)
    if alias is not None:
        names.append(alias)
    if not names:
        return previous, 0
    if current is not None:
        # A loop, not all() over a generator: this runs for every event.
        for name in names:
            if current.get(name) != version:
                break
        else:
            return previous, 0
    pointers = dict(current) if current is not None else {}
    for name in names:
        # Re-inserted, so the order is the order of last setting (for the cap).
        pointers.pop(name, None)
        pointers[name] = version
    dropped = 0
    if cap is not None and len(pointers) > cap:
        dropped = len(pointers) - cap
        for name in list(pointers)[:dropped]:
            del pointers[name]
    if max_bytes is not None and len(pointers) * _POINTER_BYTES + len(path) * 2 > max_bytes:
        # Only a collection this large is measured: JSON key and value, as the table writes.
        size = len(dumps(path)) + len(dumps(pointers))
        oldest = iter(list(pointers))
        while size > max_bytes and len(pointers) > 1:
            name = next(oldest)
            size -= len(dumps(name)) + len(str(pointers.pop(name))) + 2
            dropped += 1
    store.set(path, pointers)
    return previous, dropped


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _b64(data: bytes | None) -> str | None:
    return DeadLetter.encode(data)


def _header_items(source: MessageSource) -> list[tuple[str | bytes, bytes | None]]:
    headers = source.headers or ()
    return list(headers.items() if isinstance(headers, Mapping) else headers)


def unreadable_header(headers: Headers) -> str | None:
    """Why a record's headers cannot be read (a key that is not UTF-8), or None."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for index, (key, _) in enumerate(items):
        if isinstance(key, bytes | bytearray | memoryview):
            try:
                bytes(key).decode("utf-8")
            except UnicodeDecodeError as exc:
                return (
                    f"header {index}: its key is not UTF-8 (byte {exc.start}); Kafka header "
                    "keys are strings, so the record cannot be read as an event"
                )
    return None


def _kept_headers(
    items: list[tuple[str | bytes, bytes | None]], share: int
) -> tuple[list[DeadLetterHeader], int]:
    """The headers of a dead letter, in at most `share` bytes of the originals; and how
    many were left out."""
    out: list[DeadLetterHeader] = []
    left = share
    for index, (key, value) in enumerate(items):
        raw_key = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else bytes(key)
        # The key as JSON text (an escaped byte takes up to 6) and a header's framing.
        cost = 6 * len(raw_key) + 64
        if cost > left:
            return out, len(items) - index
        left -= cost
        try:
            name, key_b64 = raw_key.decode("utf-8"), None
        except UnicodeDecodeError:
            name, key_b64 = raw_key.decode("utf-8", "replace"), _b64(raw_key)
        # A value in base64: 4 characters for 3 bytes.
        fits = left // 4 * 3
        kept = value if value is None or len(value) <= fits else value[:fits]
        left -= (len(kept or b"") + 2) // 3 * 4
        out.append(
            DeadLetterHeader(
                key=name,
                value_b64=_b64(kept),
                key_b64=key_b64,
                value_size=None if value is None else len(value),
                value_truncated=kept is not value,
            )
        )
    return out, 0


def _event_id_of(raw: bytes | None) -> str | None:
    if not raw:
        return None
    try:
        obj = loads(raw)
    except JSONDecodeError:
        return None
    if isinstance(obj, dict):
        value = obj.get("event_id")
        if isinstance(value, str):
            return value[:128]
    return None


class Pipeline:
    """Event bytes in, action jobs (or a dead-letter record) out; no I/O."""

    __slots__ = (
        "alias_cap",
        "budgets",
        "clock",
        "dead_letter_value_limit",
        "dlq_topic",
        "index",
        "limits",
        "max_event_bytes",
        "max_job_bytes",
        "render_budget",
        "reserved_topics",
        "state_budget",
        "topics",
    )

    @classmethod
    def from_settings(
        cls,
        index: AutomationIndex,
        settings: Settings,
        clock: Callable[[], datetime] = _utcnow,
        limits: RecordLimits | None = None,
    ) -> Pipeline:
        """The pipeline a worker, a dry run or `evaluate` runs: topics and limits of settings.

        `limits` are the topics' record limits (default: as Hookstream creates them).
        """
        return cls(
            index,
            topics=settings.action_topics,
            max_event_bytes=settings.max_event_bytes,
            clock=clock,
            reserved_topics=settings.reserved_topics,
            limits=limits or RecordLimits.from_settings(settings),
            dlq_topic=settings.dlq_topic,
            alias_cap=settings.max_aliases_per_collection,
            alias_topic=settings.alias_pointers_topic,
        )

    def __init__(
        self,
        index: AutomationIndex,
        topics: Mapping[str, str],
        max_event_bytes: int,
        clock: Callable[[], datetime] = _utcnow,
        *,
        reserved_topics: Collection[str] = (),
        limits: RecordLimits | None = None,
        dlq_topic: str = "events.dlq",
        alias_cap: int | None = None,
        alias_topic: str | None = None,
    ) -> None:
        missing = [kind for kind in TOPIC_ACTION_TYPES if not topics.get(kind)]
        if missing:
            raise ConfigError(f"no topic for action types: {', '.join(missing)}")
        self.index = index
        self.topics = dict(topics)
        self.max_event_bytes = max_event_bytes
        # Originals up to twice the event limit are kept whole (their base64 still fits
        # the dead-letter record size the worker's producer allows: 4x the event limit).
        self.dead_letter_value_limit = 2 * max_event_bytes
        # A job is at most the largest record the worker's producer sends
        # (Settings.max_record_bytes); a larger one would crash the send. Rendering
        # stops early at three event limits (the job also carries the event), so a
        # template repeating a large metadata value cannot exhaust memory.
        self.max_job_bytes = record_size_limit(max_event_bytes)
        self.render_budget = 3 * max_event_bytes
        # Every record is sized against its topic's limit before it is sent; without
        # limits, every topic takes what the worker's producer sends.
        self.limits = limits or RecordLimits(
            producer=self.max_job_bytes, default=self.max_job_bytes
        )
        # Record budget per topic, filled as jobs go to each (a kafka action names its own).
        self.budgets: dict[str, int] = {}
        self.dlq_topic = dlq_topic
        self.alias_cap = alias_cap
        self.state_budget = None if alias_topic is None else self.limits.budget(alias_topic)
        self.clock = clock
        # A kafka action may not write into Hookstream's own topics (loops, corruption).
        self.reserved_topics = frozenset(reserved_topics) | frozenset(self.topics.values())

    def process(
        self, raw: bytes | None, *, aliases: AliasStore, source: MessageSource
    ) -> ProcessResult:
        """Validate, update alias pointers, match and render one message."""
        unread = self.unreadable(raw, source)
        if unread is not None:
            return unread
        assert raw is not None  # a null value is unreadable
        try:
            # A CloudEvent (ce_ headers or a structured content type) carries the event
            # as its data; a record without headers is the event itself.
            payload = from_kafka(source.headers, raw) if source.headers else raw
            event, received = parse_event(payload, self.max_event_bytes)
        except InvalidEventError as exc:
            return self.dead_letter(raw, source, exc)
        previous, dropped = alias_update(event, aliases, self.alias_cap, self.state_budget)
        result = ProcessResult(event=event, previous_version=previous, aliases_dropped=dropped)
        matched = self.index.match(event, filter_document(event))
        if not matched:
            return result
        result.matched = matched
        variables = template_variables(event, previous)
        created_at = self.clock().astimezone(UTC)
        # Shared by every job of this event: built once.
        common: dict[str, Any] = {
            "event_id": event.event_id,
            "event_type": event.event_type.value,
            "created_at": iso_z(created_at, "milliseconds"),
            "previous_version": previous,
        }
        for compiled in matched:
            try:
                self.emit(compiled, event.event_id, variables, common, received, result)
            except Exception as exc:  # one broken automation must not stop the others
                result.failures.append((compiled.id, f"{type(exc).__name__}: {exc}"))
        return result

    def emit(
        self,
        compiled: CompiledAutomation,
        event_id: str,
        variables: Mapping[str, str],
        common: dict[str, Any],
        received: dict[str, Any],
        result: ProcessResult,
    ) -> None:
        """Render one matched automation's job into ``result`` (also the run path's jobs)."""
        action_type = compiled.action_type
        if action_type == "no_op":
            result.skipped.append((compiled.id, "no_op action: nothing to send"))
            return
        if type(variables) is TemplateVariables:
            variables.budget = self.render_budget
        action = compiled.render_action(variables)
        if action_type == "kafka":
            topic = action["topic"]
            if topic in self.reserved_topics:
                result.skipped.append((compiled.id, f"kafka topic '{topic}' is reserved"))
                return
        else:
            topic = self.topics[action_type]
        fields: dict[str, Any] = {
            "job_id": job_id(event_id, compiled.id, compiled.revision),
            "automation_id": compiled.id,
            "automation_name": compiled.name,
            "automation_revision": compiled.revision,
            "action_type": action_type,
            **common,
            "action": action,
            "event": received,
        }
        value = dumps(fields)
        key = compiled.id.encode()
        budget = self.budgets.get(topic)
        if budget is None:
            budget = self.budgets[topic] = self.limits.budget(topic)
        if len(value) + len(key) > budget:
            raise JobTooLargeError(
                f"job is {len(value) + len(key)} bytes, over the {budget}-byte record limit "
                f"of topic '{topic}' (max.message.bytes {self.limits.limit(topic)})"
            )
        headers = None
        if compiled.automation.job_format == "cloudevents":
            headers = job_headers(
                fields["job_id"],
                compiled.id,
                action_type,
                event_id,
                datetime.fromisoformat(common["created_at"]),
            )
        result.outbounds.append(Outbound(topic, key, value, action_type, compiled.id, headers))

    def unreadable(self, raw: bytes | None, source: MessageSource) -> ProcessResult | None:
        """The dead letter of a record that cannot be read at all (a null value, a header
        key that is not UTF-8), before its value is parsed; None for any other (also the
        run path's)."""
        if raw is None:
            error = InvalidEventError("null message value", code=DeadLetterCode.EMPTY)
            return self.dead_letter(raw, source, error)
        headers = source.headers
        if headers:
            unreadable = unreadable_header(headers)
            if unreadable is not None:
                error = InvalidEventError(unreadable, code=DeadLetterCode.UNREADABLE_HEADER)
                return self.dead_letter(raw, source, error)
        return None

    def dead_letter(
        self, raw: bytes | None, source: MessageSource, error: InvalidEventError
    ) -> ProcessResult:
        """The dead-letter record of a message that is not valid (also run records)."""
        # The whole record (its Kafka key, the original's key and headers in base64, the
        # value in base64) must fit the dead-letter topic: the key and the headers get up
        # to a sixteenth of the budget each, the value what is left.
        budget = self.limits.budget(self.dlq_topic)
        share = budget // 16
        key = source.key
        key_kept = key if key is None or len(key) <= share else key[:share]
        headers, dropped = _kept_headers(_header_items(source), share)
        fields: dict[str, Any] = {
            "value_size": None if raw is None else len(raw),
            "key_b64": _b64(key_kept),
            "key_size": None if key is None else len(key),
            "key_truncated": key_kept is not key,
            "headers": headers,
            "headers_dropped": dropped,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "reason": error.reason,
            "error_code": str(error.code),
            "failed_at": self.clock(),
            "event_id": _event_id_of(raw) if error.code != DeadLetterCode.TOO_LARGE else None,
        }
        # A truncated key would land the record elsewhere anyway: then it has none.
        kafka_key = key if key_kept is key else None
        kept = raw
        if raw is not None and len(raw) > self.dead_letter_value_limit:
            kept = raw[: self.max_event_bytes]
        if raw is not None:
            empty = DeadLetter(value_b64="", value_truncated=True, **fields)
            room = budget - len(empty.model_dump_json()) - (len(kafka_key) if kafka_key else 0)
            # base64 writes 4 characters for 3 bytes, and JSON does not escape them.
            fits = max(room, 0) // 4 * 3
            if len(kept or b"") > fits:
                kept = raw[:fits]
        record = DeadLetter(value_b64=_b64(kept), value_truncated=kept is not raw, **fields)
        return ProcessResult(
            dead_letter=record.model_dump_json().encode(),
            dead_letter_record=record,
            dead_letter_key=kafka_key,
            reason=error.reason,
            error_code=str(error.code),
        )


def automation_from_record(value: bytes | None, key: bytes | None = None) -> Automation | None:
    """An automation from the compacted topic; None for a tombstone."""
    if value is None:
        return None
    try:
        data = loads(value)
    except JSONDecodeError as exc:
        raise InvalidAutomationError([("", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise InvalidAutomationError([("", "an automation must be a JSON object")])
    automation = parse_automation(data)
    if key is not None and key != automation.id.encode():
        shown = key.decode("utf-8", "replace")
        raise InvalidAutomationError(
            [("id", f"record key '{shown}' differs from id '{automation.id}'")]
        )
    return automation
