"""Events (contract "Events"): the models, and parse_event, which refuses what is not one."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.contract.dead_letters import DeadLetterCode
from app.contract.fields import (
    EventId,
    Label,
    Name,
    Timestamp,
    Version,
    error_message,
    error_path,
    short_repr,
)
from app.errors import InvalidEventError
from app.serialization import JSONDecodeError, loads

__all__ = [
    "ALIAS_EVENTS",
    "MAX_EVENT_DEPTH",
    "TAG_EVENTS",
    "Artifact",
    "Event",
    "EventType",
    "EventTypeField",
    "Source",
    "check_integers",
    "check_structure",
    "parse_event",
    "parse_object",
    "read_object",
]


class EventType(StrEnum):
    """Event types (W&B names); ``LINK_MODEL`` is read as ``LINK_ARTIFACT``."""

    CREATE_ARTIFACT = "CREATE_ARTIFACT"
    ADD_ARTIFACT_ALIAS = "ADD_ARTIFACT_ALIAS"
    LINK_ARTIFACT = "LINK_ARTIFACT"
    # Artifact events of issue 14 (contract "More artifact events").
    UNLINK_ARTIFACT = "UNLINK_ARTIFACT"
    ADD_ARTIFACT_TAG = "ADD_ARTIFACT_TAG"
    REMOVE_ARTIFACT_TAG = "REMOVE_ARTIFACT_TAG"
    REMOVE_ARTIFACT_ALIAS = "REMOVE_ARTIFACT_ALIAS"


#: Events about one alias (``alias`` required) and about one tag (``tag`` required).
ALIAS_EVENTS: Final = frozenset({EventType.ADD_ARTIFACT_ALIAS, EventType.REMOVE_ARTIFACT_ALIAS})
TAG_EVENTS: Final = frozenset({EventType.ADD_ARTIFACT_TAG, EventType.REMOVE_ARTIFACT_TAG})


_EVENT_TYPE_NAMES = ", ".join(t.value for t in EventType)
_EVENT_TYPE_VALUES = frozenset(t.value for t in EventType)


def _event_type(value: Any) -> Any:
    return EventType.LINK_ARTIFACT.value if value == "LINK_MODEL" else value


_EVENT_TYPE_SCHEMA = WithJsonSchema(
    {"type": "string", "enum": [*(t.value for t in EventType), "LINK_MODEL"]},
    mode="validation",
)

EventTypeField = Annotated[EventType, BeforeValidator(_event_type), _EVENT_TYPE_SCHEMA]


class Artifact(BaseModel):
    """The artifact version an event is about."""

    model_config = ConfigDict(extra="allow", frozen=True)

    collection: Name
    type: Label
    version: Version
    digest: Annotated[str, StringConstraints(max_length=512)] | None = None
    aliases: Annotated[list[Label], Field(max_length=1000)] = Field(default_factory=list)
    tags: Annotated[list[Label], Field(max_length=1000)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Source(BaseModel):
    """The source artifact version of a ``LINK_ARTIFACT`` event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    entity: Name
    project: Name
    collection: Name
    version: Version


def _required_when(types: list[str], field: str) -> dict[str, Any]:
    return {
        "if": {"properties": {"event_type": {"enum": types}}, "required": ["event_type"]},
        "then": {"required": [field]},
    }


# The schema says what _required_by_type enforces: the fields each event type needs.
_TYPE_REQUIREMENTS: Final[dict[str, Any]] = {
    "allOf": [
        _required_when(sorted(t.value for t in ALIAS_EVENTS), "alias"),
        _required_when(sorted(t.value for t in TAG_EVENTS), "tag"),
        _required_when([EventType.LINK_ARTIFACT.value, "LINK_MODEL"], "source"),
    ]
}


class Event(BaseModel):
    """A registry or artifact event (contract "Events"); extra fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_TYPE_REQUIREMENTS)

    event_id: EventId
    event_type: EventTypeField
    occurred_at: Timestamp
    author: Label | None = None
    entity: Name
    project: Name
    registry: Name | None = None
    artifact: Artifact
    alias: Label | None = None
    tag: Label | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _required_by_type(self) -> Event:
        kind = self.event_type
        if kind in ALIAS_EVENTS and self.alias is None:
            raise PydanticCustomError(
                "missing_field", f"Field required for {kind.value} events", {"path": "alias"}
            )
        if kind in TAG_EVENTS and self.tag is None:
            raise PydanticCustomError(
                "missing_field", f"Field required for {kind.value} events", {"path": "tag"}
            )
        if self.event_type is EventType.LINK_ARTIFACT and self.source is None:
            raise PydanticCustomError(
                "missing_field", "Field required for LINK_ARTIFACT events", {"path": "source"}
            )
        return self

    @property
    def collection_path(self) -> str:
        """``entity/project/collection``: the Kafka key and the alias-state key."""
        return f"{self.entity}/{self.project}/{self.artifact.collection}"

    @property
    def is_registry_event(self) -> bool:
        """True when the collection is a registered model in a registry."""
        return self.registry is not None

    @property
    def version_string(self) -> str:
        """``v3``."""
        return f"v{self.artifact.version}"

    @property
    def artifact_version_string(self) -> str:
        """``entity/project/collection:v3``."""
        return f"{self.entity}/{self.project}/{self.artifact.collection}:v{self.artifact.version}"

    @property
    def added_alias(self) -> str | None:
        """The alias added by an ``ADD_ARTIFACT_ALIAS`` event; None for other events."""
        return self.alias if self.event_type is EventType.ADD_ARTIFACT_ALIAS else None

    @property
    def event_alias(self) -> str | None:
        """The alias an alias event (added or removed) is about; None for other events."""
        return self.alias if self.event_type in ALIAS_EVENTS else None

    @property
    def event_tag(self) -> str | None:
        """The tag a tag event (added or removed) is about; None for other events."""
        return self.tag if self.event_type in TAG_EVENTS else None


def _event_error(exc: ValidationError) -> InvalidEventError:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["loc"] == ("event_type",) and error["type"] == "enum":
            return InvalidEventError(
                f"event_type: unknown event type {short_repr(error['input'])}; expected one of "
                f"{_EVENT_TYPE_NAMES} (LINK_MODEL is read as LINK_ARTIFACT)",
                code=DeadLetterCode.UNKNOWN_EVENT_TYPE,
            )
    missing = any(error["type"] in ("missing", "missing_field") for error in errors)
    parts = [f"{error_path(error)}: {error_message(error)}" for error in errors[:10]]
    if len(errors) > 10:
        parts.append(f"and {len(errors) - 10} more")
    code = DeadLetterCode.MISSING_FIELD if missing else DeadLetterCode.INVALID_FIELD
    return InvalidEventError("; ".join(parts), code=code)


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


#: Deepest nesting of an event's JSON (the top-level object is level 1). The job
#: carries the event one level down, and JSON readers stop far above this (orjson
#: writes at most 254 levels, pydantic's parser reads about 200), so a deeper event
#: could be matched but its job never written or read: it is a dead letter instead.
MAX_EVENT_DEPTH: Final = 64

_JSON_SPACE = b" \t\n\r"


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


# orjson reads an integer beyond 64 bits as a float, of magnitude 2**63 or more.
_BIG = float(2**63)


def _shape(obj: dict[str, Any]) -> tuple[int, int, bool]:
    """(number of object keys, nesting depth, whether a float of 2**63 or more in
    magnitude is held) of a parsed JSON object, without recursion."""
    keys = 0
    deepest = 0
    big = False
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_EVENT_DEPTH:
                break
        if type(value) is dict:
            keys += len(value)
            children = value.values()
        else:
            children = value
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float and not -_BIG < child < _BIG:
                big = True
    return keys, deepest, big


def _too_deep_path(obj: dict[str, Any]) -> str:
    """Where the first value nested deeper than MAX_EVENT_DEPTH sits (a few segments)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(obj, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_EVENT_DEPTH:
            shown = ".".join(path[:4])
            return f"{shown}..." if len(path) > 4 else shown
        items = value.items() if type(value) is dict else enumerate(value)
        for key, child in items:
            if type(child) is dict or type(child) is list:
                stack.append((child, (*path, str(key))))
    return ""


def check_structure(raw: bytes, obj: dict[str, Any]) -> bool:
    """Refuse nesting deeper than MAX_EVENT_DEPTH and duplicate object keys; return
    whether the event holds a float that may have been an integer beyond 64 bits
    (also run records, app.contract.runs).

    Duplicate keys are ambiguous (parsers disagree on which one wins; I-JSON forbids
    them), so an event holding any goes to the dead letters. The check is exact and
    cheap for ordinary events: every key written ends with a quote, optional spaces
    and a colon, so counting that pattern in the raw bytes gives at least the number
    of keys written; when it equals the keys parsed, nothing was dropped. Only when
    it does not (a duplicate, or a string holding a quote before a colon) are the
    bytes parsed a second time to find the duplicate. Cost: about 2 us per event.
    """
    keys, depth, big = _shape(obj)
    if depth > MAX_EVENT_DEPTH:
        raise InvalidEventError(
            f"{_too_deep_path(obj)}: nested more than {MAX_EVENT_DEPTH} levels deep",
            code=DeadLetterCode.INVALID_FIELD,
        )
    # Without whitespace every key written ends in `":`, so this count is at least
    # the number of keys written (it also counts a quote before a colon inside a string).
    written = raw.translate(None, _JSON_SPACE).count(b'":')
    if written == keys:
        return big
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _DuplicateKeyError as exc:
        raise InvalidEventError(
            f"duplicate key {short_repr(exc.key)} in a JSON object; an event must not repeat a key",
            code=DeadLetterCode.INVALID_FIELD,
        ) from None
    return big


_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class _BigIntegerError(ValueError):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _checked_int(literal: str) -> int:
    value = int(literal)
    if not _INT_MIN <= value <= _INT_MAX:
        raise _BigIntegerError(literal)
    return value


def check_integers(raw: bytes) -> None:
    """Refuse integers beyond 64 bits: the JSON reader turned them into floats.

    Only an event holding a float of 2**63 or more in magnitude (`_shape`) gets here,
    to be parsed a second time, by the standard library, which tells integers apart.
    """
    try:
        json.loads(raw, parse_int=_checked_int)
    except _BigIntegerError as exc:
        shown = exc.literal if len(exc.literal) <= 40 else exc.literal[:37] + "..."
        raise InvalidEventError(
            f"integer {shown} does not fit 64 bits (from -2**63 to 2**64-1); "
            "send larger numbers as strings",
            code=DeadLetterCode.INVALID_FIELD,
        ) from None
    except ValueError:
        return  # not JSON to the standard library: the first reader already decided


def parse_object(raw: bytes, max_bytes: int, *, what: str = "event") -> dict[str, Any]:
    """One message as a JSON object: size, UTF-8, JSON, object, depth, duplicate keys,
    64-bit integers (`what` names it in a size refusal)."""
    obj, big = read_object(raw, max_bytes, what)
    if big:
        check_integers(bytes(raw))
    return obj


def read_object(raw: bytes, max_bytes: int, what: str) -> tuple[dict[str, Any], bool]:
    """The object (size, UTF-8, JSON, object, depth, duplicate keys), and whether it holds
    a float that may be an integer beyond 64 bits (`check_integers` then decides)."""
    size = len(raw)
    if size > max_bytes:
        raise InvalidEventError(
            f"{what} is {size} bytes, over the {max_bytes}-byte limit",
            code=DeadLetterCode.TOO_LARGE,
        )
    if size == 0:
        raise InvalidEventError("empty message", code=DeadLetterCode.EMPTY)
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise InvalidEventError(
                f"not valid UTF-8 (byte {bad.start})", code=DeadLetterCode.NOT_UTF8
            ) from None
        raise InvalidEventError(f"not valid JSON: {exc}", code=DeadLetterCode.NOT_JSON) from None
    if type(obj) is not dict:
        kind = _JSON_KINDS.get(type(obj), type(obj).__name__)
        raise InvalidEventError(f"not a JSON object (got {kind})", code=DeadLetterCode.NOT_OBJECT)
    return obj, check_structure(bytes(raw), obj)


def parse_event(raw: bytes, max_bytes: int) -> tuple[Event, dict[str, Any]]:
    """Validate one message; returns the event and the object as received."""
    obj, big = read_object(raw, max_bytes, "event")
    try:
        event = Event.model_validate(obj)
    except ValidationError as exc:
        raise _event_error(exc) from None
    if big:
        # After the fields: a field that wants an integer already named the problem.
        check_integers(bytes(raw))
    return event, obj
