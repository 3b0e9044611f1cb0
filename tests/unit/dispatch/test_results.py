"""Result and dead-letter records: fields, JSON shape, no secrets."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from app.contract.results import ActionResult, ErrorKind, JobDeadLetter, ResultStatus
from app.dispatch.outcome import AttemptOutcome
from app.dispatch.retry import attempt_result, decide
from app.dispatch_settings import DispatchSettings
from app.serialization import loads

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
JOB: dict[str, Any] = {
    "job_id": "j1",
    "automation_id": "a1",
    "event_id": "e1",
    "action_type": "webhook",
    "action": {"url": "https://x.example/h", "payload": "{}", "secret": "HOOK_SECRET"},
}


def test_attempt_record_fields() -> None:
    """A retrying attempt carries status, HTTP status, error, body and next attempt time."""
    outcome = AttemptOutcome(
        at=T0,
        duration_seconds=0.5,
        status=503,
        error="HTTP 503 Service Unavailable",
        response_body="busy",
        retry_after="30",
    )
    d = decide(
        outcome,
        attempt=1,
        first_attempt_at=T0,
        settings=DispatchSettings(),
        rng=random.Random(0),
        now=T0,
    )
    rec = attempt_result(JOB, outcome, d, attempt=1)
    data = loads(rec.to_json())
    assert data["status"] == "RETRYING"
    assert data["http_status"] == 503
    assert data["job_id"] == "j1"
    assert data["event_id"] == "e1"
    assert data["final"] is False
    assert data["response_body"] == "busy"
    assert data["next_attempt_at"].startswith("2026-11-26T10:00:30")


def test_pending_record() -> None:
    """The pending record has attempt 0 and status PENDING."""
    rec = ActionResult.pending(JOB, T0)
    assert (rec.attempt, rec.status, rec.final) == (0, ResultStatus.PENDING, False)


def test_dead_letter_holds_job_and_attempts_without_secret_values() -> None:
    """The DLQ record has the job (secret names only) and each attempt's result."""
    outcome = AttemptOutcome(
        at=T0,
        duration_seconds=0.0,
        error_kind=ErrorKind.SECRET,
        error="secret 'HOOK_SECRET' is not configured",
    )
    d = decide(
        outcome,
        attempt=1,
        first_attempt_at=T0,
        settings=DispatchSettings(),
        rng=random.Random(0),
        now=T0,
    )
    rec = attempt_result(JOB, outcome, d, attempt=1)
    dl = JobDeadLetter(job=JOB, reason=d.reason or "", attempts=[rec], dead_at=T0)
    data = loads(dl.to_json())
    assert data["job"]["action"]["secret"] == "HOOK_SECRET"
    assert data["attempts"][0]["error_kind"] == "secret"
    assert data["attempts"][0]["status"] == "FAILED"
    assert data["attempts"][0]["final"] is True
