"""Records written by the dispatchers: `action-results` (every attempt) and `actions.dlq`."""

# None of them holds a secret: jobs carry secret names only, outcomes carry no
# request headers, and error texts are built without the target URL's path or query.

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app.dispatch.outcome import AttemptOutcome, ErrorKind
from app.serialization import dumps

if TYPE_CHECKING:
    from app.dispatch.retry import Decision

__all__ = ["ActionResult", "DeadLetter", "ResultStatus"]


class ResultStatus(StrEnum):
    """Execution status, in W&B's history vocabulary plus RETRYING."""

    PENDING = "PENDING"
    RETRYING = "RETRYING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


def _text(job: Mapping[str, Any], key: str) -> str:
    """A top-level string field of a job, or '' when absent or not a string."""
    value = job.get(key)
    return value if isinstance(value, str) else ""


class ActionResult(BaseModel):
    """One record on `action-results`: an attempt, or the final outcome (`final`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    automation_id: str
    event_id: str
    action_type: str
    attempt: int = Field(ge=0)
    status: ResultStatus
    http_status: int | None = None
    error_kind: ErrorKind = ErrorKind.NONE
    error: str | None = None
    reason: str | None = None
    response_body: str | None = None
    response_truncated: bool = False
    duration_seconds: float = Field(default=0.0, ge=0)
    at: datetime
    next_attempt_at: datetime | None = None
    final: bool = False
    endpoint_gone: bool = False

    @classmethod
    def pending(cls, job: Mapping[str, Any], at: datetime) -> ActionResult:
        """The record written when a job is taken up, before its first attempt."""
        return cls(
            job_id=_text(job, "job_id"),
            automation_id=_text(job, "automation_id"),
            event_id=_text(job, "event_id"),
            action_type=_text(job, "action_type"),
            attempt=0,
            status=ResultStatus.PENDING,
            at=at,
        )

    @classmethod
    def from_attempt(
        cls,
        job: Mapping[str, Any],
        outcome: AttemptOutcome,
        decision: Decision,
        *,
        attempt: int,
    ) -> ActionResult:
        """The record of one attempt and the decision taken on it."""
        next_at = None
        if decision.delay_seconds is not None:
            waited = outcome.duration_seconds + decision.delay_seconds
            next_at = outcome.at + timedelta(seconds=waited)
        return cls(
            job_id=_text(job, "job_id"),
            automation_id=_text(job, "automation_id"),
            event_id=_text(job, "event_id"),
            action_type=_text(job, "action_type"),
            attempt=attempt,
            status=decision.status,
            http_status=outcome.status,
            error_kind=outcome.error_kind,
            error=outcome.error,
            reason=decision.reason,
            response_body=outcome.response_body,
            response_truncated=outcome.response_truncated,
            duration_seconds=outcome.duration_seconds,
            at=outcome.at,
            next_attempt_at=next_at,
            final=decision.final,
            endpoint_gone=decision.endpoint_gone,
        )

    def to_json(self) -> bytes:
        """The Kafka message value."""
        return dumps(self.model_dump(mode="json"))


class DeadLetter(BaseModel):
    """One record on `actions.dlq`: the job as received and every attempt's result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: dict[str, Any]
    reason: str
    attempts: list[ActionResult]
    dead_at: datetime

    def to_json(self) -> bytes:
        """The Kafka message value."""
        return dumps(self.model_dump(mode="json"))
