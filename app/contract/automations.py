"""Automations (contract "Automations"): scopes, actions, and parse_automation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.contract.events import EventType
from app.contract.fields import (
    HeaderName,
    Label,
    Name,
    SecretName,
    Slug,
    TopicName,
    field_errors,
    short_repr,
)
from app.contract.runs import RunEventType, run_event_filter
from app.errors import FilterError, InvalidAutomationError, TemplateError
from app.lang.filters import compile_filter
from app.lang.templating import compile_template, sample_variables
from app.serialization import JSONDecodeError, loads

__all__ = [
    "AUTOMATION_EVENT_TYPES",
    "DEFAULT_NOTIFICATION_TITLE",
    "DEFAULT_RUN_METRIC_PAYLOAD",
    "DEFAULT_RUN_METRIC_TITLE",
    "DEFAULT_RUN_STATE_PAYLOAD",
    "DEFAULT_RUN_STATE_TITLE",
    "DEFAULT_WEBHOOK_PAYLOAD",
    "SCOPE_TYPES",
    "Action",
    "ActionType",
    "ArtifactCollectionScope",
    "Automation",
    "AutomationEvent",
    "EntityScope",
    "KafkaAction",
    "NoOpAction",
    "NotificationAction",
    "ProjectScope",
    "QueueJobAction",
    "RegistryScope",
    "Scope",
    "WebhookAction",
    "parse_automation",
    "run_action_defaults",
    "scope_types_of",
]


ActionType = Literal["webhook", "notification", "queue_job", "kafka", "no_op"]


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


class EntityScope(BaseModel):
    """Every project and every registry of one entity (W&B: a team or organisation scope)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["entity"]
    entity: Name


Scope = Annotated[
    ProjectScope | RegistryScope | ArtifactCollectionScope | EntityScope,
    Field(discriminator="type"),
]

#: Every scope type, in the contract's order (the `type` of each scope model).
SCOPE_TYPES: Final[tuple[str, ...]] = tuple(
    get_args(model.model_fields["type"].annotation)[0]
    for model in (ProjectScope, RegistryScope, ArtifactCollectionScope, EntityScope)
)

#: Every event type an automation watches: the artifact and registry events, then the
#: run events (app.contract.runs).
AUTOMATION_EVENT_TYPES: Final[tuple[EventType | RunEventType, ...]] = (*EventType, *RunEventType)


def scope_types_of(event: EventType | RunEventType) -> tuple[str, ...]:
    """The scope types an automation on `event` takes (as the W&B SDK allows them)."""
    if isinstance(event, RunEventType):
        return ("project", "entity")
    if event is EventType.CREATE_ARTIFACT:
        return ("artifact_collection",)
    return SCOPE_TYPES


_AUTOMATION_EVENT_NAMES: Final = ", ".join(AUTOMATION_EVENT_TYPES)


def _automation_event(value: Any) -> EventType | RunEventType:
    if isinstance(value, EventType | RunEventType):
        return value
    if isinstance(value, str):
        # The W&B SDK looks event types up case-insensitively; an automation may too.
        name = value.strip().upper()
        if name == "LINK_MODEL":
            return EventType.LINK_ARTIFACT
        for kind in (EventType, RunEventType):
            try:
                return kind(name)
            except ValueError:
                pass
    # Named, so that a W&B event Hookstream lacks (ADD_COLLECTION_TAG...) reads clearly.
    raise PydanticCustomError(
        "event_type",
        "unknown event type {value}; expected one of {names} (LINK_MODEL is read as LINK_ARTIFACT)",
        {"value": short_repr(value), "names": _AUTOMATION_EVENT_NAMES},
    )


# An artifact or registry event type, or a run event type (app.contract.runs), in any
# letter case (W&B SDK look-ups).
AutomationEvent = Annotated[
    EventType | RunEventType,
    PlainValidator(_automation_event),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "enum": [*EventType, "LINK_MODEL", *RunEventType]}, mode="validation"
    ),
]


def _template_error(exc: TemplateError, path: str = "") -> PydanticCustomError:
    return PydanticCustomError("invalid_template", "{reason}", {"reason": str(exc), "path": path})


def _json_value(text: str, kind: str, message: str) -> Any:
    """The JSON value of `text`; a PydanticCustomError(kind, message) when it is not JSON."""
    try:
        return loads(text)
    except JSONDecodeError as exc:
        raise PydanticCustomError(kind, message, {"reason": str(exc)}) from None


def _json_template(value: str) -> str:
    try:
        template = compile_template(value, json_context=True)
    except TemplateError as exc:
        raise _template_error(exc) from None
    _json_value(
        template.render(sample_variables()),
        "invalid_json",
        "not valid JSON after rendering a sample event: {reason}",
    )
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


JsonTemplate = Annotated[str, StringConstraints(min_length=1), AfterValidator(_json_template)]
TextTemplate = Annotated[str, AfterValidator(_text_template)]
HeaderTemplate = Annotated[
    str, StringConstraints(max_length=8192), AfterValidator(_header_template)
]


#: The payload of a webhook written without one (the W&B SDK's ``SendWebhook`` makes
#: ``request_payload`` optional): the event in W&B's variable names, one JSON object.
DEFAULT_WEBHOOK_PAYLOAD: Final = (
    '{"event_type": "${event_type}", "event_id": "${event_id}", '
    '"event_author": "${event_author}", "entity_name": "${entity_name}", '
    '"project_name": "${project_name}", "registry_name": "${registry_name}", '
    '"artifact_collection_name": "${artifact_collection_name}", '
    '"artifact_version": "${artifact_version}", '
    '"artifact_version_string": "${artifact_version_string}", '
    '"alias": "${alias}", "tag": "${tag}", "occurred_at": "${occurred_at}"}'
)

#: The title of a notification written without one (the W&B SDK's default is "").
DEFAULT_NOTIFICATION_TITLE: Final = "${event_type} on ${artifact_version_string}"


#: The defaults of run automations: the run and the metric (or state) that fired, in the
#: run variables (a run job has no artifact, so the artifact defaults would render empty).
DEFAULT_RUN_METRIC_PAYLOAD: Final = (
    '{"event_type": "${event_type}", "event_id": "${event_id}", '
    '"event_author": "${event_author}", "entity_name": "${entity_name}", '
    '"project_name": "${project_name}", "run_id": "${run_id}", "run_name": "${run_name}", '
    '"run_path": "${run_path}", "metric_name": "${metric_name}", '
    '"metric_value": "${metric_value}", "step": "${step}", "occurred_at": "${occurred_at}"}'
)
DEFAULT_RUN_STATE_PAYLOAD: Final = (
    '{"event_type": "${event_type}", "event_id": "${event_id}", '
    '"event_author": "${event_author}", "entity_name": "${entity_name}", '
    '"project_name": "${project_name}", "run_id": "${run_id}", "run_name": "${run_name}", '
    '"run_path": "${run_path}", "run_state": "${run_state}", "occurred_at": "${occurred_at}"}'
)
DEFAULT_RUN_METRIC_TITLE: Final = (
    "${event_type}: ${metric_name} ${metric_value} at step ${step} of run ${run_path}"
)
DEFAULT_RUN_STATE_TITLE: Final = "${event_type}: run ${run_path} ${run_state}"


def run_action_defaults(event: RunEventType) -> tuple[str, str]:
    """(webhook payload, notification title) a run automation gets when it gives none."""
    if event is RunEventType.RUN_STATE:
        return DEFAULT_RUN_STATE_PAYLOAD, DEFAULT_RUN_STATE_TITLE
    return DEFAULT_RUN_METRIC_PAYLOAD, DEFAULT_RUN_METRIC_TITLE


def _with_run_defaults(data: Any) -> Any:
    """An automation whose run event leaves the payload or title out gets the run defaults.

    The artifact defaults count as left out: they only speak of an artifact (an
    automation stored before 1.8 carries them).
    """
    if not isinstance(data, Mapping):
        return data
    action = data.get("action")
    try:
        event = _automation_event(data.get("event"))
    except PydanticCustomError:
        return data
    if not isinstance(event, RunEventType):
        return data
    payload, title = run_action_defaults(event)
    if isinstance(action, BaseModel):
        action = action.model_dump()
    if not isinstance(action, Mapping):
        return data
    kind = action.get("type")
    if kind == "webhook" and action.get("payload") in (None, "", DEFAULT_WEBHOOK_PAYLOAD):
        return {**data, "action": {**action, "payload": payload}}
    if kind == "notification" and action.get("title") in (None, "", DEFAULT_NOTIFICATION_TITLE):
        return {**data, "action": {**action, "title": title}}
    return data


def _default_if_empty(default: str) -> Any:
    def fill(value: Any) -> Any:
        return default if value is None or value == "" else value

    return BeforeValidator(fill)


class WebhookAction(BaseModel):
    """POST a rendered JSON payload to a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"]
    url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
    payload: Annotated[JsonTemplate, _default_if_empty(DEFAULT_WEBHOOK_PAYLOAD)] = (
        DEFAULT_WEBHOOK_PAYLOAD
    )
    headers: Annotated[dict[HeaderName, HeaderTemplate], Field(max_length=64)] | None = None
    secret: SecretName | None = None
    access_token: SecretName | None = None


class NotificationAction(BaseModel):
    """A message to a notification channel (W&B: Slack)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["notification"]
    channel: Label
    title: Annotated[
        TextTemplate,
        StringConstraints(min_length=1, max_length=1000),
        _default_if_empty(DEFAULT_NOTIFICATION_TITLE),
    ] = DEFAULT_NOTIFICATION_TITLE
    message: Annotated[TextTemplate, StringConstraints(max_length=20_000)] = ""
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


def _filter_json(value: Any) -> Any:
    # W&B's API stores and returns a filter as JSON text; it is read as the object.
    if not isinstance(value, str):
        return value
    return _json_value(value, "invalid_filter", "a filter given as a string must be JSON: {reason}")


class Automation(BaseModel):
    """An automation (contract "Automations"); ``revision`` is a Hookstream addition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    enabled: StrictBool = True
    event: AutomationEvent
    scope: Scope
    filter: Annotated[
        dict[str, Any] | None,
        BeforeValidator(_filter_json),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "object"},
                    {"type": "string", "contentMediaType": "application/json"},
                    {"type": "null"},
                ]
            },
            mode="validation",
        ),
    ] = None
    action: Action
    # `cloudevents`: each job record also carries CloudEvents 1.0 binary-mode `ce_`
    # headers (the value stays the job JSON), for consumers that route CloudEvents.
    job_format: Literal["json", "cloudevents"] = "json"
    revision: Annotated[StrictInt, Field(ge=1)] = 1
    # Run events only: after a firing, the same run does not fire again for this long
    # (measured on the records' occurred_at). A Hookstream addition.
    cooldown_seconds: Annotated[StrictInt | float, Field(ge=0, le=366 * 86400)] | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _run_defaults(cls, data: Any) -> Any:
        return _with_run_defaults(data)

    @property
    def is_run_automation(self) -> bool:
        """Whether the automation watches run events (app.contract.runs)."""
        return isinstance(self.event, RunEventType)

    @field_validator("filter")
    @classmethod
    def _compiles(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        # `event` is validated before `filter`: a run event takes the SDK's run filter.
        event = info.data.get("event")
        if isinstance(event, RunEventType):
            _check_run_filter(event, value)
            return value
        try:
            compile_filter(value)
        except FilterError as exc:
            raise PydanticCustomError(
                "invalid_filter", "{reason}", {"reason": exc.reason, "path": exc.path}
            ) from None
        return value

    @model_validator(mode="after")
    def _run_fields(self) -> Automation:
        if isinstance(self.event, RunEventType):
            if self.scope.type not in scope_types_of(self.event):
                raise PydanticCustomError(
                    "scope_event",
                    "{event} takes a project or entity scope (as in W&B), not {scope}",
                    {"path": "scope.type", "event": self.event.value, "scope": self.scope.type},
                )
            if self.filter is None:
                # A field validator does not run on an omitted (default) filter.
                raise PydanticCustomError(
                    "missing_filter",
                    "a {event} automation needs a filter (run_metric_filter or run_state_filter)",
                    {"path": "filter", "event": self.event.value},
                )
            return self
        if self.cooldown_seconds is not None:
            raise PydanticCustomError(
                "cooldown",
                "cooldown_seconds applies to run events only",
                {"path": "cooldown_seconds"},
            )
        return self

    @model_validator(mode="after")
    def _scope_fits_event(self) -> Automation:
        if self.event is EventType.CREATE_ARTIFACT and self.scope.type not in scope_types_of(
            self.event
        ):
            raise PydanticCustomError(
                "scope_event",
                "CREATE_ARTIFACT takes an artifact_collection scope (as in W&B), not {scope}",
                {"path": "scope.type", "scope": self.scope.type},
            )
        return self


def _check_run_filter(event: RunEventType, spec: dict[str, Any] | None) -> None:
    """A run automation's filter: the SDK's JSON, and a run filter that compiles."""
    try:
        parsed = run_event_filter(event, spec)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PydanticCustomError(
            "invalid_filter", "{reason}", {"reason": error["msg"], "path": where}
        ) from None
    run_filter = parsed.run_filter
    try:
        compile_filter(loads(run_filter) if isinstance(run_filter, str) else run_filter, run=True)
    except FilterError as exc:
        path = f"run_filter.{exc.path}" if exc.path else "run_filter"
        raise PydanticCustomError(
            "invalid_filter", "{reason}", {"reason": exc.reason, "path": path}
        ) from None


def parse_automation(data: Mapping[str, Any]) -> Automation:
    """Validate an automation, its filter and its templates; raises InvalidAutomationError."""
    if not isinstance(data, Mapping):
        raise InvalidAutomationError([("", "an automation must be an object")])
    try:
        return Automation.model_validate(data)
    except ValidationError as exc:
        raise InvalidAutomationError(field_errors(exc)) from None
