"""The public contract as pydantic models: events, automations, action jobs, dead letters."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from app.errors import FilterError, InvalidAutomationError, InvalidEventError, TemplateError
from app.lang.filters import compile_filter
from app.lang.templating import compile_template, sample_variables
from app.serialization import JSONDecodeError, loads

__all__ = [
    "JOB_ID_NAMESPACE",
    "MAX_EVENT_DEPTH",
    "Action",
    "ActionJob",
    "ActionType",
    "Artifact",
    "ArtifactCollectionScope",
    "Automation",
    "DeadLetter",
    "DeadLetterCode",
    "DeadLetterHeader",
    "Event",
    "EventType",
    "KafkaAction",
    "KafkaActionJob",
    "NoOpAction",
    "NoOpActionJob",
    "NotificationAction",
    "NotificationActionJob",
    "ProjectScope",
    "QueueJobAction",
    "QueueJobActionJob",
    "RegistryScope",
    "RenderedKafka",
    "RenderedNoOp",
    "RenderedNotification",
    "RenderedQueueJob",
    "RenderedWebhook",
    "Scope",
    "Source",
    "WebhookAction",
    "WebhookActionJob",
    "job_id",
    "parse_action_job",
    "parse_automation",
    "parse_event",
]


class EventType(StrEnum):
    """The three event types (W&B names); ``LINK_MODEL`` is read as ``LINK_ARTIFACT``."""

    CREATE_ARTIFACT = "CREATE_ARTIFACT"
    ADD_ARTIFACT_ALIAS = "ADD_ARTIFACT_ALIAS"
    LINK_ARTIFACT = "LINK_ARTIFACT"


class DeadLetterCode(StrEnum):
    """Why an event went to the dead-letter topic (``error_code``)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"


ActionType = Literal["webhook", "notification", "queue_job", "kafka", "no_op"]

_EVENT_TYPE_NAMES = ", ".join(t.value for t in EventType)


def _event_type(value: Any) -> Any:
    return EventType.LINK_ARTIFACT.value if value == "LINK_MODEL" else value


EventTypeField = Annotated[
    EventType,
    BeforeValidator(_event_type),
    WithJsonSchema(
        {"type": "string", "enum": [*(t.value for t in EventType), "LINK_MODEL"]},
        mode="validation",
    ),
]

_NAME_PATTERN = r"^[^/:\x00-\x1f\x7f]+$"
_LABEL_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_SECRET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
_HEADER_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$"

# Pattern constraints run in pydantic's Rust core (fast); these say what they mean.
_PATTERN_MESSAGES = {
    _NAME_PATTERN: "must not contain '/', ':' or control characters",
    _LABEL_PATTERN: "must not contain control characters",
    _SLUG_PATTERN: "must be a slug: 1 to 128 of a-z 0-9 . _ -, starting with a letter or digit",
    _SECRET_PATTERN: "must be the NAME of a secret (letters, digits, _), never its value",
    _TOPIC_PATTERN: "must be a Kafka topic name: 1 to 249 of A-Z a-z 0-9 . _ -",
    _HEADER_PATTERN: "must be an HTTP header name",
}


def _printable(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("printable", "must be printable characters only")
    return value


def _timestamp(value: Any) -> Any:
    # Lax pydantic would read a number as seconds since 1970; the contract wants RFC 3339.
    if isinstance(value, str | datetime):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 timestamp string")


Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NAME_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_LABEL_PATTERN)]
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_printable)
]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]
Version = Annotated[StrictInt, Field(ge=0)]
SecretName = Annotated[str, StringConstraints(pattern=_SECRET_PATTERN, max_length=128)]


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


class Event(BaseModel):
    """A registry or artifact event (contract "Events"); extra fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: EventId
    event_type: EventTypeField
    occurred_at: Timestamp
    author: Label | None = None
    entity: Name
    project: Name
    registry: Name | None = None
    artifact: Artifact
    alias: Label | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _required_by_type(self) -> Event:
        if self.event_type is EventType.ADD_ARTIFACT_ALIAS and self.alias is None:
            raise PydanticCustomError(
                "missing_field", "Field required for ADD_ARTIFACT_ALIAS events", {"path": "alias"}
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


class ProjectScope(BaseModel):
    """Artifacts of one project (never its registries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["project"]
    entity: Name
    project: Name


class RegistryScope(BaseModel):
    """Every collection of one registry, present and future."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["registry"]
    entity: Name
    registry: Name


class ArtifactCollectionScope(BaseModel):
    """One collection of a project, or one registered model of a registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["artifact_collection"]
    entity: Name
    collection: Name
    project: Name | None = None
    registry: Name | None = None

    @model_validator(mode="after")
    def _one_parent(self) -> ArtifactCollectionScope:
        if (self.project is None) == (self.registry is None):
            raise PydanticCustomError(
                "scope_parent", "give exactly one of project or registry", {"path": ""}
            )
        return self


Scope = Annotated[
    ProjectScope | RegistryScope | ArtifactCollectionScope, Field(discriminator="type")
]


def _template_error(exc: TemplateError, path: str = "") -> PydanticCustomError:
    return PydanticCustomError("invalid_template", "{reason}", {"reason": str(exc), "path": path})


def _json_template(value: str) -> str:
    try:
        template = compile_template(value, json_context=True)
    except TemplateError as exc:
        raise _template_error(exc) from None
    try:
        loads(template.render(sample_variables()))
    except JSONDecodeError as exc:
        raise PydanticCustomError(
            "invalid_json",
            "not valid JSON after rendering a sample event: {reason}",
            {"reason": str(exc)},
        ) from None
    return value


def _text_template(value: str) -> str:
    try:
        compile_template(value)
    except TemplateError as exc:
        raise _template_error(exc) from None
    return value


def _header_template(value: str) -> str:
    try:
        compile_template(value, single_line=True)
    except TemplateError as exc:
        raise _template_error(exc) from None
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "url", "not a valid URL: {reason}", {"reason": str(exc)}
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("url", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # Secrets travel as names only: credentials belong in `secret`/`access_token`.
        raise PydanticCustomError("url", "must not carry credentials (user:password@)")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise PydanticCustomError("url", "must not contain spaces or control characters")
    return value


def _topic(value: str) -> str:
    if value in (".", "..") or value.startswith("__"):
        raise PydanticCustomError("topic", "'.', '..' and names starting with '__' are reserved")
    return value


JsonTemplate = Annotated[str, StringConstraints(min_length=1), AfterValidator(_json_template)]
TextTemplate = Annotated[str, AfterValidator(_text_template)]
HeaderName = Annotated[str, StringConstraints(pattern=_HEADER_PATTERN)]
HeaderTemplate = Annotated[
    str, StringConstraints(max_length=8192), AfterValidator(_header_template)
]
TopicName = Annotated[str, StringConstraints(pattern=_TOPIC_PATTERN), AfterValidator(_topic)]


class WebhookAction(BaseModel):
    """POST a rendered JSON payload to a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"]
    url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
    payload: JsonTemplate
    headers: Annotated[dict[HeaderName, HeaderTemplate], Field(max_length=64)] | None = None
    secret: SecretName | None = None
    access_token: SecretName | None = None


class NotificationAction(BaseModel):
    """A message to a notification channel (W&B: Slack)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["notification"]
    channel: Label
    title: Annotated[TextTemplate, StringConstraints(min_length=1, max_length=1000)]
    message: Annotated[TextTemplate, StringConstraints(max_length=20_000)]
    severity: Literal["INFO", "WARN", "ERROR"] = "INFO"


def _check_config(value: Any, path: str, depth: int = 0) -> None:
    if depth > 32:
        raise PydanticCustomError("config_depth", "nested too deeply", {"path": path})
    if isinstance(value, str):
        try:
            compile_template(value)
        except TemplateError as exc:
            raise _template_error(exc, path) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PydanticCustomError("config_key", "keys must be strings", {"path": path})
            _check_config(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_config(item, f"{path}.{index}" if path else str(index), depth + 1)
    elif not (value is None or isinstance(value, bool | int | float)):
        raise PydanticCustomError(
            "config_value",
            "unsupported value of type {kind}",
            {"path": path, "kind": type(value).__name__},
        )


class QueueJobAction(BaseModel):
    """Enqueue a job (W&B: launch job) with a templated config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["queue_job"]
    queue: Label
    job: Label
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_config(value, "")
        return value


class KafkaAction(BaseModel):
    """Produce the action job to a Kafka topic of the user's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["kafka"]
    topic: TopicName
    payload: JsonTemplate


class NoOpAction(BaseModel):
    """Do nothing (W&B: DoNothing); useful to test matching."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["no_op"]


Action = Annotated[
    WebhookAction | NotificationAction | QueueJobAction | KafkaAction | NoOpAction,
    Field(discriminator="type"),
]


class Automation(BaseModel):
    """An automation (contract "Automations"); ``revision`` is a Hookstream addition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=_SLUG_PATTERN)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    enabled: StrictBool = True
    event: EventTypeField
    scope: Scope
    filter: dict[str, Any] | None = None
    action: Action
    revision: Annotated[StrictInt, Field(ge=1)] = 1
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @field_validator("filter")
    @classmethod
    def _compiles(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            compile_filter(value)
        except FilterError as exc:
            raise PydanticCustomError(
                "invalid_filter", "{reason}", {"reason": exc.reason, "path": exc.path}
            ) from None
        return value

    @model_validator(mode="after")
    def _scope_fits_event(self) -> Automation:
        if self.event is EventType.CREATE_ARTIFACT and self.scope.type != "artifact_collection":
            raise PydanticCustomError(
                "scope_event",
                "CREATE_ARTIFACT takes an artifact_collection scope (as in W&B), not {scope}",
                {"path": "scope.type", "scope": self.scope.type},
            )
        return self


class RenderedWebhook(BaseModel):
    """A webhook action with its payload and headers rendered; secrets as names."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    url: str
    payload: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = None
    access_token: str | None = None


class RenderedNotification(BaseModel):
    """A notification action with title and message rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    channel: str
    title: str
    message: str
    severity: Literal["INFO", "WARN", "ERROR"]


class RenderedQueueJob(BaseModel):
    """A queue_job action with its config rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    queue: str
    job: str
    config: dict[str, Any] = Field(default_factory=dict)


class RenderedKafka(BaseModel):
    """A kafka action with its payload rendered."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    topic: str
    payload: str


class RenderedNoOp(BaseModel):
    """A no_op action: nothing to render."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class _JobBase(BaseModel):
    """Fields every action job carries (contract "Action jobs")."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    job_id: str
    automation_id: str
    automation_name: str
    automation_revision: int
    event_id: str
    event_type: EventType
    created_at: AwareDatetime
    previous_version: int | None = None
    event: dict[str, Any]


class WebhookActionJob(_JobBase):
    """A job on the webhook topic."""

    action_type: Literal["webhook"] = "webhook"
    action: RenderedWebhook


class NotificationActionJob(_JobBase):
    """A job on the notification topic."""

    action_type: Literal["notification"] = "notification"
    action: RenderedNotification


class QueueJobActionJob(_JobBase):
    """A job on the queue_job topic."""

    action_type: Literal["queue_job"] = "queue_job"
    action: RenderedQueueJob


class KafkaActionJob(_JobBase):
    """A job on the topic its kafka action names."""

    action_type: Literal["kafka"] = "kafka"
    action: RenderedKafka


class NoOpActionJob(_JobBase):
    """A no_op match; never produced to a topic."""

    action_type: Literal["no_op"] = "no_op"
    action: RenderedNoOp


ActionJob = Annotated[
    WebhookActionJob | NotificationActionJob | QueueJobActionJob | KafkaActionJob | NoOpActionJob,
    Field(discriminator="action_type"),
]
_ACTION_JOB: TypeAdapter[ActionJob] = TypeAdapter(ActionJob)


def parse_action_job(raw: bytes | str) -> ActionJob:
    """Read an action job from its JSON; raises pydantic ValidationError."""
    return _ACTION_JOB.validate_json(raw)


class DeadLetterHeader(BaseModel):
    """One Kafka header of the original message."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    key: str
    value_b64: str | None


class DeadLetter(BaseModel):
    """A message that could not be processed, kept byte for byte with the reason."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    value_b64: str | None
    key_b64: str | None
    headers: list[DeadLetterHeader] = Field(default_factory=list)
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error_code: str
    failed_at: AwareDatetime
    event_id: str | None = None
    # Size of the original value; `value_truncated` marks a value kept only in part
    # because in full it could not fit in a Kafka record (see docs/decisions.md).
    value_size: int | None = None
    value_truncated: bool = False

    @staticmethod
    def encode(data: bytes | None) -> str | None:
        """Base64 of raw bytes (None stays None)."""
        return None if data is None else base64.b64encode(data).decode("ascii")

    def original_value(self) -> bytes | None:
        """The original message value."""
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)


JOB_ID_NAMESPACE: Final = uuid.UUID("6f1c2f0e-7a56-5d1b-9a4e-3c8f4b1d2e07")


_NAMESPACE_BYTES = JOB_ID_NAMESPACE.bytes


def job_id(event_id: str, automation_id: str, revision: int) -> str:
    """uuid5(JOB_ID_NAMESPACE, "<event_id>\\n<automation_id>\\n<revision>"): same input, same id."""
    # Neither an event id (printable) nor an automation id (slug) can hold a newline.
    # This is uuid.uuid5 inlined: the UUID object costs more than the hash, per job.
    name = f"{event_id}\n{automation_id}\n{revision}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UNION_FIELDS = {
    "scope": frozenset({"project", "registry", "artifact_collection"}),
    "action": frozenset({"webhook", "notification", "queue_job", "kafka", "no_op"}),
}


def _path(error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    if len(loc) > 1 and loc[1] in _UNION_FIELDS.get(loc[0], ()):
        del loc[1]
    extra = (error.get("ctx") or {}).get("path")
    if extra:
        loc.append(str(extra))
    return ".".join(loc)


def _message(error: ErrorDetails) -> str:
    if error["type"] == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in _PATTERN_MESSAGES:
            return _PATTERN_MESSAGES[pattern]
    return error["msg"]


def _field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_path(error), _message(error)) for error in exc.errors(include_url=False)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _event_error(exc: ValidationError) -> InvalidEventError:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["loc"] == ("event_type",) and error["type"] == "enum":
            return InvalidEventError(
                f"event_type: unknown event type {_short(error['input'])}; expected one of "
                f"{_EVENT_TYPE_NAMES} (LINK_MODEL is read as LINK_ARTIFACT)",
                code=DeadLetterCode.UNKNOWN_EVENT_TYPE,
            )
    missing = any(error["type"] in ("missing", "missing_field") for error in errors)
    parts = [f"{_path(error)}: {_message(error)}" for error in errors[:10]]
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


def _shape(obj: dict[str, Any]) -> tuple[int, int]:
    """(number of object keys, nesting depth) of a parsed JSON object, without recursion."""
    keys = 0
    deepest = 0
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
    return keys, deepest


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


def _check_structure(raw: bytes, obj: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_EVENT_DEPTH and duplicate object keys.

    Duplicate keys are ambiguous (parsers disagree on which one wins; I-JSON forbids
    them), so an event holding any goes to the dead letters. The check is exact and
    cheap for ordinary events: every key written ends with a quote, optional spaces
    and a colon, so counting that pattern in the raw bytes gives at least the number
    of keys written; when it equals the keys parsed, nothing was dropped. Only when
    it does not (a duplicate, or a string holding a quote before a colon) are the
    bytes parsed a second time to find the duplicate. Cost: about 2 us per event.
    """
    keys, depth = _shape(obj)
    if depth > MAX_EVENT_DEPTH:
        raise InvalidEventError(
            f"{_too_deep_path(obj)}: nested more than {MAX_EVENT_DEPTH} levels deep",
            code=DeadLetterCode.INVALID_FIELD,
        )
    # Without whitespace every key written ends in `":`, so this count is at least
    # the number of keys written (it also counts a quote before a colon inside a string).
    written = raw.translate(None, _JSON_SPACE).count(b'":')
    if written == keys:
        return
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _DuplicateKeyError as exc:
        raise InvalidEventError(
            f"duplicate key {_short(exc.key)} in a JSON object; an event must not repeat a key",
            code=DeadLetterCode.INVALID_FIELD,
        ) from None


def parse_event(raw: bytes, max_bytes: int) -> tuple[Event, dict[str, Any]]:
    """Validate one message; returns the event and the object as received."""
    size = len(raw)
    if size > max_bytes:
        raise InvalidEventError(
            f"event is {size} bytes, over the {max_bytes}-byte limit", code=DeadLetterCode.TOO_LARGE
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
    _check_structure(bytes(raw), obj)
    try:
        event = Event.model_validate(obj)
    except ValidationError as exc:
        raise _event_error(exc) from None
    return event, obj


def parse_automation(data: Mapping[str, Any]) -> Automation:
    """Validate an automation, its filter and its templates; raises InvalidAutomationError."""
    if not isinstance(data, Mapping):
        raise InvalidAutomationError([("", "an automation must be an object")])
    try:
        return Automation.model_validate(data)
    except ValidationError as exc:
        raise InvalidAutomationError(_field_errors(exc)) from None
