"""Retry policy: classification table, backoff bounds, Retry-After, exhaustion, decisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.contract.results import ErrorKind, ResultStatus
from app.dispatch.outcome import AttemptOutcome
from app.dispatch.retry import (
    Verdict,
    backoff_ceiling,
    classify,
    decide,
    exhausted,
    next_delay,
    parse_retry_after,
    retry_tier,
)
from app.dispatch_settings import DispatchSettings

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SETTINGS = DispatchSettings()


def http(status: int, retry_after: str | None = None) -> AttemptOutcome:
    """An outcome with an HTTP status."""
    return AttemptOutcome(at=T0, duration_seconds=0.1, status=status, retry_after=retry_after)


def error(kind: ErrorKind) -> AttemptOutcome:
    """An outcome without an HTTP response."""
    return AttemptOutcome(at=T0, duration_seconds=0.1, error_kind=kind, error=str(kind))


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (http(200), Verdict.SUCCESS),
        (http(201), Verdict.SUCCESS),
        (http(204), Verdict.SUCCESS),
        (http(299), Verdict.SUCCESS),
        (http(301), Verdict.FAIL),
        (http(302), Verdict.FAIL),
        (http(307), Verdict.FAIL),
        (http(400), Verdict.FAIL),
        (http(401), Verdict.FAIL),
        (http(403), Verdict.FAIL),
        (http(404), Verdict.FAIL),
        (http(408), Verdict.RETRY),
        (http(409), Verdict.FAIL),
        (http(410), Verdict.GONE),
        (http(413), Verdict.FAIL),
        (http(422), Verdict.FAIL),
        (http(425), Verdict.RETRY),
        (http(429), Verdict.RETRY),
        (http(500), Verdict.RETRY),
        (http(502), Verdict.RETRY),
        (http(503), Verdict.RETRY),
        (http(504), Verdict.RETRY),
        (http(599), Verdict.RETRY),
        (http(100), Verdict.FAIL),
        (http(600), Verdict.FAIL),
        (error(ErrorKind.TIMEOUT), Verdict.RETRY),
        (error(ErrorKind.CONNECTION), Verdict.RETRY),
        (error(ErrorKind.BLOCKED), Verdict.FAIL),
        (error(ErrorKind.SECRET), Verdict.FAIL),
        (error(ErrorKind.INVALID_JOB), Verdict.FAIL),
    ],
)
def test_classification_table(outcome: AttemptOutcome, verdict: Verdict) -> None:
    """Each status / error class maps to the documented verdict."""
    assert classify(outcome) is verdict


def test_backoff_ceiling_doubles_and_caps() -> None:
    """The ceiling is base * 2**(n-1), capped at backoff_max_seconds."""
    assert [backoff_ceiling(n, SETTINGS) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_ceiling(13, SETTINGS) == 3600.0
    assert backoff_ceiling(10_000, SETTINGS) == 3600.0


@given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_next_delay_within_full_jitter_bounds(attempt: int, seed: int) -> None:
    """Without Retry-After the delay is in [0, ceiling]."""
    delay = next_delay(attempt, None, random.Random(seed), settings=SETTINGS, now=T0)
    assert 0.0 <= delay <= backoff_ceiling(attempt, SETTINGS)


def test_next_delay_is_jittered() -> None:
    """Different random draws give different delays (not a fixed schedule)."""
    rng = random.Random(7)
    delays = {next_delay(10, None, rng, settings=SETTINGS, now=T0) for _ in range(20)}
    assert len(delays) > 10


def test_retry_after_seconds_raises_the_delay() -> None:
    """Retry-After: 120 makes the delay at least 120 s even on the first retry."""
    delay = next_delay(1, "120", random.Random(1), settings=SETTINGS, now=T0)
    assert delay == 120.0


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After is converted to seconds from now."""
    value = format_datetime(T0 + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(value, T0) == 90.0
    assert next_delay(1, value, random.Random(1), settings=SETTINGS, now=T0) == 90.0


def test_retry_after_is_capped() -> None:
    """A Retry-After beyond the cap is honoured only up to backoff_max_seconds."""
    assert next_delay(1, "999999", random.Random(1), settings=SETTINGS, now=T0) == 3600.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5"])
def test_bad_retry_after_is_ignored(value: str | None) -> None:
    """Unparseable Retry-After values are ignored."""
    assert parse_retry_after(value, T0) is None


def test_past_retry_after_date_is_zero() -> None:
    """A date in the past asks for no wait."""
    value = format_datetime(T0 - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(value, T0) == 0.0


def test_exhausted_by_attempts_or_age() -> None:
    """Exhausted at max_attempts or beyond max_age, not before."""
    assert not exhausted(7, 10.0, SETTINGS)
    assert exhausted(8, 10.0, SETTINGS)
    assert exhausted(1, 86400.1, SETTINGS)
    assert not exhausted(1, 86400.0, SETTINGS)


def test_decide_success_is_final() -> None:
    """A 2xx finishes the job."""
    d = decide(
        http(200), attempt=1, first_attempt_at=T0, settings=SETTINGS, rng=random.Random(0), now=T0
    )
    assert (d.status, d.final, d.dead_letter) == (ResultStatus.FINISHED, True, False)


def test_decide_gone_marks_endpoint() -> None:
    """410 fails at once, marks the endpoint gone and dead-letters."""
    d = decide(
        http(410), attempt=1, first_attempt_at=T0, settings=SETTINGS, rng=random.Random(0), now=T0
    )
    assert (d.status, d.final, d.endpoint_gone, d.dead_letter) == (
        ResultStatus.FAILED,
        True,
        True,
        True,
    )


def test_decide_400_fails_without_retry() -> None:
    """400 is final on the first attempt."""
    d = decide(
        http(400), attempt=1, first_attempt_at=T0, settings=SETTINGS, rng=random.Random(0), now=T0
    )
    assert d.final
    assert d.delay_seconds is None
    assert d.status is ResultStatus.FAILED


def test_decide_503_retries_with_delay() -> None:
    """503 on attempt 1 is RETRYING with a delay within the first ceiling."""
    d = decide(
        http(503), attempt=1, first_attempt_at=T0, settings=SETTINGS, rng=random.Random(0), now=T0
    )
    assert d.status is ResultStatus.RETRYING
    assert not d.final
    assert d.delay_seconds is not None
    assert 0 <= d.delay_seconds <= 1.0


def test_decide_gives_up_at_max_attempts() -> None:
    """The 8th failed attempt is final and dead-lettered."""
    d = decide(
        http(503), attempt=8, first_attempt_at=T0, settings=SETTINGS, rng=random.Random(0), now=T0
    )
    assert d.final
    assert d.dead_letter
    assert d.reason == "gave up after 8 attempts"


def test_decide_gives_up_when_next_attempt_passes_max_age() -> None:
    """If the next attempt would start after max_age the job fails now."""
    now = T0 + timedelta(seconds=86399)
    d = decide(
        http(429, "60"),
        attempt=2,
        first_attempt_at=T0,
        settings=SETTINGS,
        rng=random.Random(0),
        now=now,
    )
    assert d.final
    assert d.reason is not None
    assert "max age" in d.reason


def test_retry_tier_choice() -> None:
    """The tier is the largest not above the delay, or the smallest."""
    assert retry_tier(0.3, SETTINGS) == 5.0
    assert retry_tier(29.9, SETTINGS) == 5.0
    assert retry_tier(30.0, SETTINGS) == 30.0
    assert retry_tier(10_000, SETTINGS) == 3600.0
