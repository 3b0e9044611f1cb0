"""Retry policy as pure functions: classify an attempt, pick the next delay, decide."""

# Classification (Standard Webhooks / Stripe / GitHub practice):
#
# - 2xx: SUCCESS.
# - 408, 425, 429, any 5xx, timeouts and connection errors: RETRY.
# - 410 Gone: GONE (fail now and mark the automation's endpoint gone).
# - 3xx: FAIL. Redirects are never followed: a redirect would re-send the signed body
#   and the bearer token to a URL the automation's owner did not write (possibly
#   another host, or one the network policy was not asked about up front), and
#   301/302/303 would turn the POST into a GET. The history shows the 3xx so the
#   owner can put the final URL in the automation.
# - any other 4xx (and any status outside 200..599): FAIL at once.
# - refused by the network policy, secret not configured, malformed job: FAIL.
#
# Backoff: "full jitter", uniform in [0, min(cap, base * 2**(attempt-1))]; a
# `Retry-After` (seconds or HTTP date) raises the delay to what the server asked
# for, still within the cap. Retries end when `max_attempts` attempts were made or
# the next attempt would start later than `max_age_seconds` after the first one.

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from app.contract.results import ActionResult, ErrorKind, ResultStatus, job_text
from app.dispatch.outcome import AttemptOutcome, is_2xx
from app.dispatch_settings import DispatchSettings

__all__ = [
    "RETRYABLE_STATUSES",
    "Decision",
    "Verdict",
    "attempt_result",
    "backoff_ceiling",
    "classify",
    "decide",
    "exhausted",
    "next_delay",
    "parse_retry_after",
    "retry_tier",
]

RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Verdict(StrEnum):
    """What an attempt's outcome means for the job."""

    SUCCESS = "success"
    RETRY = "retry"
    FAIL = "fail"
    GONE = "gone"


def classify(outcome: AttemptOutcome) -> Verdict:
    """SUCCESS, RETRY, FAIL or GONE for one attempt (see the module docstring)."""
    if outcome.error_kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION):
        return Verdict.RETRY
    if outcome.error_kind is not ErrorKind.NONE or outcome.status is None:
        return Verdict.FAIL
    status = outcome.status
    if is_2xx(status):
        return Verdict.SUCCESS
    if status == 410:
        return Verdict.GONE
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        return Verdict.RETRY
    return Verdict.FAIL


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header (delta or HTTP date); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_ceiling(attempt: int, settings: DispatchSettings) -> float:
    """Upper bound of the jittered delay after `attempt` attempts (1-based)."""
    exponent = min(max(attempt, 1) - 1, 60)
    return min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2.0**exponent)


def next_delay(
    attempt: int,
    retry_after: str | None,
    rng: random.Random,
    *,
    settings: DispatchSettings,
    now: datetime,
) -> float:
    """Seconds to wait before the next attempt: full jitter, Retry-After honoured within the cap."""
    delay = rng.uniform(0.0, backoff_ceiling(attempt, settings))
    asked = parse_retry_after(retry_after, now)
    if asked is not None:
        delay = max(delay, asked)
    return min(delay, settings.backoff_max_seconds)


def exhausted(attempts: int, age_seconds: float, settings: DispatchSettings) -> bool:
    """True when no further attempt may be made."""
    return attempts >= settings.max_attempts or age_seconds > settings.max_age_seconds


def retry_tier(delay_seconds: float, settings: DispatchSettings) -> float:
    """The retry tier for a delay: the largest tier not above it (else the smallest tier)."""
    tiers = settings.retry_tiers_seconds
    chosen = tiers[0]
    for tier in tiers:
        if tier <= delay_seconds:
            chosen = tier
    return chosen


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a job after an attempt."""

    verdict: Verdict
    status: ResultStatus
    final: bool
    delay_seconds: float | None = None
    endpoint_gone: bool = False
    dead_letter: bool = False
    reason: str | None = None


def decide(
    outcome: AttemptOutcome,
    *,
    attempt: int,
    first_attempt_at: datetime,
    settings: DispatchSettings,
    rng: random.Random,
    now: datetime,
) -> Decision:
    """Combine classification, backoff and exhaustion; every final failure is dead-lettered."""
    verdict = classify(outcome)
    if verdict is Verdict.SUCCESS:
        return Decision(verdict, ResultStatus.FINISHED, final=True)
    if verdict is Verdict.GONE:
        return Decision(
            verdict,
            ResultStatus.FAILED,
            final=True,
            endpoint_gone=True,
            dead_letter=True,
            reason="endpoint gone (410)",
        )
    if verdict is Verdict.FAIL:
        return Decision(
            verdict, ResultStatus.FAILED, final=True, dead_letter=True, reason="not retryable"
        )
    delay = next_delay(attempt, outcome.retry_after, rng, settings=settings, now=now)
    age_at_next = (now - first_attempt_at).total_seconds() + delay
    if exhausted(attempt, age_at_next, settings):
        reason = (
            f"gave up after {attempt} attempts"
            if attempt >= settings.max_attempts
            else f"gave up: next attempt would pass max age {settings.max_age_seconds:g}s"
        )
        return Decision(verdict, ResultStatus.FAILED, final=True, dead_letter=True, reason=reason)
    return Decision(verdict, ResultStatus.RETRYING, final=False, delay_seconds=delay)


def attempt_result(
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
    return ActionResult(
        job_id=job_text(job, "job_id"),
        automation_id=job_text(job, "automation_id"),
        event_id=job_text(job, "event_id"),
        action_type=job_text(job, "action_type"),
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
