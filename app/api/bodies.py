"""Request and response bodies of the API as pydantic models, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.contract.automations import Automation
from app.contract.events import Event
from app.contract.runs import RunMetricRecord, RunStateRecord

# A run automation's dry run takes one run record or several, in order.
DryRunInput = Event | RunMetricRecord | RunStateRecord | list[RunMetricRecord | RunStateRecord]

__all__ = [
    "AdHocDryRun",
    "AutomationList",
    "DeliveryAccepted",
    "DryRun",
    "DryRunResult",
    "ErrorBody",
    "EventAccepted",
    "FieldError",
    "RunRecordVerdict",
]


class FieldError(BaseModel):
    """One refused field: its dotted path and why."""

    field: str = Field(description="dotted path, e.g. action.url or scope.type; '' for the body")
    reason: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="what went wrong, for people")
    status: int
    errors: list[FieldError] | None = Field(default=None, description="422: every bad field")


class AutomationList(BaseModel):
    """GET /automations."""

    items: list[Automation]
    count: int


class DryRun(BaseModel):
    """POST /automations/{id}/test; without `event` a typed example event is generated.

    A run automation takes a run record or an array of them (its examples: a few records
    crossing its condition).
    """

    model_config = ConfigDict(extra="forbid")

    event: DryRunInput | None = None


class AdHocDryRun(BaseModel):
    """POST /automations/test: an automation that need not exist, and an optional event."""

    model_config = ConfigDict(extra="forbid")

    automation: Automation
    event: DryRunInput | None = None


class RunRecordVerdict(BaseModel):
    """One run record of a run automation's dry run."""

    index: int
    event_type: str
    run_path: str
    step: int | None = Field(description="RUN_METRIC: the record's step")
    state: str | None = Field(description="RUN_STATE: the state entered")
    event_id: str | None = Field(description="the jobs' event id, when it fires")
    automation_id: str
    fired: bool
    reasons: list[str] = Field(
        description="why it does not fire: the condition false at its value, undefined (too "
        "few values), already true (edge), the cooldown, the run filter, scope, record type"
    )
    metric: str | None = None
    value: float | None = Field(description="the value compared: latest, aggregate, window")
    window: list[float] | None = Field(description="the values the condition read, oldest first")
    job: dict[str, Any] | None = Field(description="the job rendered when it fires")
    topic: str | None
    notes: list[str]


class DryRunResult(BaseModel):
    """Whether the automation fires for the event, why not, and the job it renders."""

    automation_id: str
    matched: bool
    reasons: list[str] = Field(
        description="every reason it does not fire: disabled, event type, each scope part, "
        "each failing filter clause with the values compared; empty when matched"
    )
    job: dict[str, Any] | None = Field(
        description="the action job the workers would emit (rendered by the same Pipeline); "
        "for a disabled automation, the job it would emit once enabled"
    )
    topic: str | None = Field(description="where the job would be produced")
    notes: list[str] = Field(description="why a match emits nothing (no_op, reserved topic)")
    event: dict[str, Any] | list[dict[str, Any]] = Field(
        description="the event used, as received or generated (run records: the record, or "
        "the array of records)"
    )
    event_generated: bool
    records: list[RunRecordVerdict] | None = Field(
        default=None,
        description="run automations only: each record in order, whether it fires and why not",
    )


class EventAccepted(BaseModel):
    """POST /events: where the event was written."""

    event_id: str
    topic: str
    partition: int
    offset: int


class DeliveryAccepted(BaseModel):
    """POST /ingest/*: a webhook delivery taken (202 published; 200 repeat or no event)."""

    published: bool
    duplicate: bool = False
    ignored: str | None = Field(default=None, description="why no event was published")
    event_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
