"""Records of job execution: `action-results` (every attempt) and `actions.dlq` (contract)."""

# None of them holds a secret: jobs carry secret names only, outcomes carry no
# request headers, and error texts are built without the target URL's path or query.

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.serialization import dumps

__all__ = ["ActionResult", "ErrorKind", "JobDeadLetter", "ResultStatus", "job_text"]


class ErrorKind(StrEnum):
    """What went wrong before or instead of an HTTP response."""

    NONE = "none"  # an HTTP response arrived (any status)
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BLOCKED = "blocked"  # refused by the network policy
    SECRET = "secret"  # a named secret is not configured
    INVALID_JOB = "invalid_job"
    ENDPOINT_GONE = "endpoint_gone"  # not sent: an earlier attempt got 410 at this revision


class ResultStatus(StrEnum):
    """Execution status, in W&B's history vocabulary plus RETRYING."""

    PENDING = "PENDING"
    RETRYING = "RETRYING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


def job_text(job: Mapping[str, Any], key: str) -> str:
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
            job_id=job_text(job, "job_id"),
            automation_id=job_text(job, "automation_id"),
            event_id=job_text(job, "event_id"),
            action_type=job_text(job, "action_type"),
            attempt=0,
            status=ResultStatus.PENDING,
            at=at,
        )

    def to_json(self) -> bytes:
        """The Kafka message value."""
        return dumps(self.model_dump(mode="json"))


class JobDeadLetter(BaseModel):
    """One record on `actions.dlq`: the job as received and every attempt's result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: dict[str, Any]
    reason: str
    attempts: list[ActionResult]
    dead_at: datetime

    def to_json(self) -> bytes:
        """The Kafka message value."""
        return dumps(self.model_dump(mode="json"))
