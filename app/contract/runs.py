"""Run events (contract "Run events") and run-automation filters in the W&B SDK's JSON.

Records of the ``run-events`` topic, keyed by run path ``entity/project/run_id``:
``RUN_METRIC`` (one logged step: ``step`` and ``metrics`` {name: finite number}) and
``RUN_STATE`` (the run's new ``state``). ``parse_run_record`` refuses anything else
with an InvalidEventError whose code says why, so the record becomes a dead letter.

Run automations store their filter exactly as ``wandb.automations`` serializes it:
``{"run_filter": "<JSON text>", "run_metric_filter": {"threshold_filter" | "change_filter"
| "zscore_filter": {...}}}`` or ``{"run_filter": ..., "run_state_filter": {"states": [...]}}``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.contract.dead_letters import DeadLetterCode
from app.contract.events import check_integers, read_object
from app.contract.fields import EventId, Label, Name, Timestamp, error_message, error_path
from app.errors import InvalidEventError
from app.serialization import JSONDecodeError, loads

__all__ = [
    "RUN_EVENT_TYPES",
    "RUN_RECORD_TYPES",
    "ChangeFilter",
    "MetricFilterChoice",
    "RunEventType",
    "RunInfo",
    "RunMetricEventFilter",
    "RunMetricRecord",
    "RunRecord",
    "RunState",
    "RunStateEventFilter",
    "RunStateFilter",
    "RunStateRecord",
    "ThresholdFilter",
    "ZScoreFilter",
    "parse_run_record",
    "run_event_filter",
]


class RunEventType(StrEnum):
    """Run event types of automations (W&B names); records are RUN_METRIC or RUN_STATE."""

    RUN_METRIC = "RUN_METRIC"
    RUN_METRIC_CHANGE = "RUN_METRIC_CHANGE"
    RUN_METRIC_ZSCORE = "RUN_METRIC_ZSCORE"
    RUN_STATE = "RUN_STATE"


RUN_EVENT_TYPES = frozenset(RunEventType)


class RunState(StrEnum):
    """A run's state as W&B reports it (lower case, as ``run.state`` is)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class RunInfo(BaseModel):
    """The run a record is about, as ``run.log`` knows it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Name
    name: Annotated[str, StringConstraints(max_length=512)] | None = None
    user: Label | None = None
    tags: Annotated[list[Label], Field(max_length=1000)] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    state: RunState | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _state_case(cls, value: Any) -> Any:
        return _lower(value)


MetricName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _RunRecordBase(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: EventId | None = None
    occurred_at: Timestamp
    entity: Name
    project: Name
    run: RunInfo

    @property
    def run_path(self) -> str:
        """``entity/project/run_id``: the Kafka key and the run-state key."""
        return f"{self.entity}/{self.project}/{self.run.id}"


class RunMetricRecord(_RunRecordBase):
    """One logged step: every metric of it is a finite number."""

    event_type: Literal["RUN_METRIC"]
    step: Annotated[StrictInt, Field(ge=0)]
    metrics: Annotated[dict[MetricName, float], Field(min_length=1, max_length=10_000)]

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name, number in value.items():
            kind = type(number)
            if kind is bool or (kind is not int and kind is not float):
                raise PydanticCustomError(
                    "metric_value",
                    "metric '{name}' is not a number (got {kind}): only numbers are evaluated",
                    {"name": str(name)[:80], "kind": kind.__name__, "path": str(name)},
                )
            if kind is float and not math.isfinite(number):
                raise PydanticCustomError(
                    "metric_value",
                    "metric '{name}' is {value}, not a finite number",
                    {"name": str(name)[:80], "value": str(number), "path": str(name)},
                )
            if kind is int and abs(number) > 2**63:
                raise PydanticCustomError(
                    "metric_value",
                    "metric '{name}' is out of range",
                    {"name": str(name)[:80], "path": str(name)},
                )
        return value


class RunStateRecord(_RunRecordBase):
    """The run entered ``state``."""

    event_type: Literal["RUN_STATE"]
    state: RunState

    @field_validator("state", mode="before")
    @classmethod
    def _state_case(cls, value: Any) -> Any:
        return _lower(value)


RunRecord = Annotated[RunMetricRecord | RunStateRecord, Field(discriminator="event_type")]
#: The `event_type` of each run record: RUN_METRIC, RUN_STATE.
RUN_RECORD_TYPES: Final[tuple[str, ...]] = tuple(
    get_args(model.model_fields["event_type"].annotation)[0]
    for model in (RunMetricRecord, RunStateRecord)
)
_RUN_RECORD: TypeAdapter[RunMetricRecord | RunStateRecord] = TypeAdapter(RunRecord)


def _record_error(exc: ValidationError) -> InvalidEventError:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "union_tag_invalid":
            return InvalidEventError(
                f"event_type: unknown run event type {error['ctx'].get('tag')!r}; "
                "expected RUN_METRIC or RUN_STATE",
                code=DeadLetterCode.UNKNOWN_EVENT_TYPE,
            )
        if error["type"] == "union_tag_not_found":
            return InvalidEventError(
                "event_type: Field required (RUN_METRIC or RUN_STATE)",
                code=DeadLetterCode.MISSING_FIELD,
            )
    missing = any(error["type"] == "missing" for error in errors)
    parts = [f"{_record_path(error)}: {error_message(error)}" for error in errors[:10]]
    if len(errors) > 10:
        parts.append(f"and {len(errors) - 10} more")
    code = DeadLetterCode.MISSING_FIELD if missing else DeadLetterCode.INVALID_FIELD
    return InvalidEventError("; ".join(parts), code=code)


def _record_path(error: Any) -> str:
    # The discriminated union puts the tag first in the location; it is not a field.
    loc = error["loc"]
    if loc and loc[0] in ("RUN_METRIC", "RUN_STATE"):
        error = {**error, "loc": loc[1:]}
    return error_path(error)


def parse_run_record(
    raw: bytes, max_bytes: int
) -> tuple[RunMetricRecord | RunStateRecord, dict[str, Any]]:
    """Validate one run-events message; returns the record and the object as received."""
    try:
        obj, big = read_object(raw, max_bytes, "record")
    except InvalidEventError as exc:
        if exc.code != DeadLetterCode.NOT_JSON:
            raise
        # NaN and Infinity are not JSON: a record holding them fails here.
        raise InvalidEventError(
            f"{exc.reason} (metrics must be finite numbers: NaN and Infinity are not JSON)",
            code=exc.code,
        ) from None
    try:
        record = _RUN_RECORD.validate_python(obj)
    except ValidationError as exc:
        raise _record_error(exc) from None
    if big:
        check_integers(bytes(raw))
    return record, obj


# ---------------------------------------------------------------------------------
# Run-automation filters, in the JSON the W&B SDK stores.

Number = StrictInt | StrictFloat
PositiveNumber = Annotated[Number, Field(gt=0)]
Agg = Literal["MAX", "MIN", "AVERAGE"]
ChangeDir = Literal["INCREASE", "DECREASE", "ANY"]


def _upper(value: Any) -> Any:
    # The SDK's enums read their values case-insensitively.
    return value.strip().upper() if isinstance(value, str) else value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite", "must be a finite number")
    return value


class ThresholdFilter(BaseModel):
    """``threshold_filter``: the latest value, or agg_op over window_size values, vs threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MetricName
    agg_op: Agg | None = None
    window_size: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    # The SDK builds $gt $gte $lt $lte; $eq and $ne are W&B's other comparison operators.
    cmp_op: Literal["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"]
    threshold: Number

    _agg = field_validator("agg_op", mode="before")(classmethod(lambda cls, v: _upper(v)))
    _thr = field_validator("threshold", mode="after")(classmethod(lambda cls, v: _finite(v)))


class ChangeFilter(BaseModel):
    """``change_filter``: the current window's aggregate against the prior window's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MetricName
    agg_op: Agg | None = None
    current_window_size: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    prior_window_size: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    change_amount: PositiveNumber
    change_type: Literal["ABSOLUTE", "RELATIVE"]
    change_dir: ChangeDir

    _agg = field_validator("agg_op", "change_type", "change_dir", mode="before")(
        classmethod(lambda cls, v: _upper(v))
    )
    _amt = field_validator("change_amount", mode="after")(classmethod(lambda cls, v: _finite(v)))

    @property
    def prior_size(self) -> int:
        """The prior window's size (the SDK defaults it to the current window's)."""
        return self.prior_window_size or self.current_window_size


class ZScoreFilter(BaseModel):
    """``zscore_filter``: the latest value's z-score against the window_size values before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MetricName
    window_size: Annotated[StrictInt, Field(ge=2, le=10_000)] = 30
    threshold: PositiveNumber = 3.0
    change_dir: ChangeDir = "ANY"

    _dir = field_validator("change_dir", mode="before")(classmethod(lambda cls, v: _upper(v)))
    _thr = field_validator("threshold", mode="after")(classmethod(lambda cls, v: _finite(v)))


class MetricFilterChoice(BaseModel):
    """``run_metric_filter``: exactly one of the three metric filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_filter: ThresholdFilter | None = None
    change_filter: ChangeFilter | None = None
    zscore_filter: ZScoreFilter | None = None

    @property
    def chosen(self) -> ThresholdFilter | ChangeFilter | ZScoreFilter | None:
        """The one filter given (None when none or several are)."""
        given = [f for f in (self.threshold_filter, self.change_filter, self.zscore_filter) if f]
        return given[0] if len(given) == 1 else None


def _run_filter_text(value: Any) -> Any:
    # The SDK stores the run filter as JSON text; a dict is accepted and kept as given.
    if isinstance(value, str):
        try:
            parsed = loads(value)
        except JSONDecodeError as exc:
            raise PydanticCustomError(
                "run_filter", "not valid JSON text: {reason}", {"reason": str(exc)}
            ) from None
        if not isinstance(parsed, dict):
            raise PydanticCustomError("run_filter", "must be a JSON object")
        return value
    if isinstance(value, dict):
        return value
    raise PydanticCustomError("run_filter", "must be JSON text of an object (as the SDK stores)")


RunFilterText = Annotated[str | dict[str, Any], Field(union_mode="left_to_right")]


class RunMetricEventFilter(BaseModel):
    """The filter of a RUN_METRIC, RUN_METRIC_CHANGE or RUN_METRIC_ZSCORE automation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_filter: RunFilterText = '{"$and":[]}'
    run_metric_filter: MetricFilterChoice
    # The SDK writes its deprecated field as null; anything else is refused.
    metric_filter: None = None

    _rf = field_validator("run_filter", mode="before")(
        classmethod(lambda cls, v: _run_filter_text(v))
    )


class RunStateFilter(BaseModel):
    """``run_state_filter``: the states that trigger (the SDK writes them upper case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    states: Annotated[list[RunState], Field(min_length=1)]

    @field_validator("states", mode="before")
    @classmethod
    def _states(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return [_lower(v) for v in value] if isinstance(value, list) else value


class RunStateEventFilter(BaseModel):
    """The filter of a RUN_STATE automation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_filter: RunFilterText = '{"$and":[]}'
    run_state_filter: RunStateFilter

    _rf = field_validator("run_filter", mode="before")(
        classmethod(lambda cls, v: _run_filter_text(v))
    )


_METRIC_KIND = {
    RunEventType.RUN_METRIC: ("threshold_filter", ThresholdFilter),
    RunEventType.RUN_METRIC_CHANGE: ("change_filter", ChangeFilter),
    RunEventType.RUN_METRIC_ZSCORE: ("zscore_filter", ZScoreFilter),
}


def run_event_filter(
    event: RunEventType, spec: dict[str, Any] | None
) -> RunMetricEventFilter | RunStateEventFilter:
    """The validated filter of a run automation; raises ValidationError or PydanticCustomError."""
    if spec is None:
        raise PydanticCustomError(
            "missing_filter",
            "a {event} automation needs a filter (run_metric_filter or run_state_filter)",
            {"event": event.value},
        )
    if event is RunEventType.RUN_STATE:
        return RunStateEventFilter.model_validate(spec)
    parsed = RunMetricEventFilter.model_validate(spec)
    key, _ = _METRIC_KIND[event]
    chosen = parsed.run_metric_filter.chosen
    if chosen is None or getattr(parsed.run_metric_filter, key) is None:
        raise PydanticCustomError(
            "metric_filter",
            "a {event} automation takes exactly one run_metric_filter, {key}",
            {"event": event.value, "key": key, "path": "run_metric_filter"},
        )
    return parsed
