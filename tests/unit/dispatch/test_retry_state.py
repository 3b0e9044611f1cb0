"""Retry state round-trips through Kafka headers; a record without them is a first attempt."""

from __future__ import annotations

from datetime import UTC, datetime

from app.contract.results import ActionResult, ResultStatus
from app.dispatch.retry_state import DUE_HEADER, HISTORY_HEADER, RetryState

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_round_trip() -> None:
    """Attempts, first attempt, due time, origin and history survive the headers."""
    result = ActionResult(
        job_id="j",
        automation_id="a",
        event_id="e",
        action_type="webhook",
        attempt=2,
        status=ResultStatus.RETRYING,
        http_status=503,
        at=T0,
    )
    state = RetryState(
        attempts=2,
        first_attempt_at=T0,
        due_at=T0.replace(minute=5),
        history=[result],
        origin="actions.webhook/0/7",
    )
    back = RetryState.from_headers(state.to_headers())
    assert back == state
    assert RetryState.due_ms(state.to_headers()) == int(T0.replace(minute=5).timestamp() * 1000)


def test_no_headers_is_a_first_attempt() -> None:
    """A record straight from the action topic has made no attempt yet."""
    state = RetryState.from_headers(None)
    assert (state.attempts, state.first_attempt_at, state.due_at, state.history) == (
        0,
        None,
        None,
        [],
    )


def test_bad_headers_do_not_stop_retries() -> None:
    """Unreadable history or due time degrade to empty / due now, never an exception."""
    state = RetryState.from_headers([(HISTORY_HEADER, b"{not json"), (DUE_HEADER, b"soon")])
    assert state.history == []
    assert state.due_at is None
