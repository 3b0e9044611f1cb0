"""One job record taken up: dedup, one attempt, then its result and follow-up records."""

# Returns only when every record the attempt leads to (result, retry record, dead
# letter, dedup entry) is acknowledged by Kafka; only then may the offset be committed.
# So a crash loses no job: at worst a record is taken up again and, unless the dedup
# entry already says FINISHED, attempted again.

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from app.contract.jobs import parse_action_job
from app.contract.results import ActionResult, ErrorKind, JobDeadLetter, ResultStatus
from app.core.topics import DispatchTopics
from app.dispatch.deliver import deliver
from app.dispatch.http import WebhookSender, failed_outcome
from app.dispatch.metrics import DispatchMetrics
from app.dispatch.outcome import AttemptOutcome
from app.dispatch.outgoing import Outgoing, Publisher, Sent
from app.dispatch.retry import Decision, Verdict, attempt_result, decide, retry_tier
from app.dispatch.retry_state import RetryState
from app.dispatch.secrets import SecretResolver
from app.dispatch.state import DispatchState
from app.dispatch_settings import DispatchSettings
from app.serialization import JSONDecodeError, loads

__all__ = ["JobProcessor", "JobRecord"]

log = logging.getLogger(__name__)

_REASON_LIMIT = 500


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The parts of a consumed record the processor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class _KeyedLock:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _text(job: Mapping[str, Any], key: str) -> str:
    value = job.get(key)
    return value if isinstance(value, str) else ""


def _invalid_reason(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '(job)'}: {e['msg']}"
        for e in exc.errors(include_url=False)[:5]
    ]
    return ("invalid action job: " + "; ".join(parts))[:_REASON_LIMIT]


class JobProcessor:
    """Takes one job record from the action topic or a retry topic through one attempt."""

    def __init__(
        self,
        *,
        topics: DispatchTopics,
        settings: DispatchSettings,
        publisher: Publisher,
        state: DispatchState,
        sender: WebhookSender,
        secrets: SecretResolver,
        metrics: DispatchMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._topics = topics
        self._settings = settings
        self._pub = publisher
        self._state = state
        self._sender = sender
        self._secrets = secrets
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._locks = _KeyedLock()
        self._label = topics.kind

    async def process(self, record: JobRecord) -> None:
        """Handle one record; returns when all its consequences are acknowledged by Kafka."""
        retry = record.topic != self._topics.action
        job = self._job_object(record.value)
        if job is None:
            await self._dead_letter_raw(record)
            return
        job_id = _text(job, "job_id")
        if job_id and self._state.finished(job_id):
            self._skip_duplicate(job_id, record)
            return
        pending = Sent()
        if not retry:
            result = ActionResult.pending(job, datetime.now(UTC))
            pending = await self._pub.enqueue([self._result_record(record, job, result)])
        state = RetryState.from_headers(record.headers) if retry else RetryState()
        async with self._locks.hold(job_id):
            # Another copy of this job (a redelivery racing a retry) may have finished it.
            if job_id and self._state.finished(job_id):
                self._skip_duplicate(job_id, record)
                await self._pub.settle(pending)
                return
            follow_ups = await self._attempt(record, job, state)
            await self._pub.settle(pending, await self._pub.enqueue(follow_ups))

    def _skip_duplicate(self, job_id: str, record: JobRecord) -> None:
        self._metrics.duplicates_skipped.labels(self._label).inc()
        log.info(
            "job %s already FINISHED; not sent again (%s[%d]@%d)",
            job_id,
            record.topic,
            record.partition,
            record.offset,
        )

    @staticmethod
    def _job_object(value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            obj = loads(value)
        except JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None

    async def _attempt(
        self, record: JobRecord, job: dict[str, Any], state: RetryState
    ) -> list[Outgoing]:
        attempt = state.attempts + 1
        outcome, decision = await self._try_once(record, job, state, attempt)
        result = attempt_result(job, outcome, decision, attempt=attempt)
        self._metrics.attempts.labels(self._label, decision.verdict.value).inc()
        out = [self._result_record(record, job, result)]
        job_id = _text(job, "job_id")
        automation_id = _text(job, "automation_id")
        if decision.verdict is Verdict.SUCCESS:
            out.append(self._state.note_final(job_id, automation_id, ResultStatus.FINISHED))
            self._metrics.deliveries.labels(self._label, "finished").inc()
            return out
        if not decision.final:
            out.append(self._retry_record(record, state, outcome, result, decision))
            return out
        reason = decision.reason or "failed"
        if outcome.error and outcome.error_kind is not ErrorKind.ENDPOINT_GONE:
            reason = f"{reason}: {outcome.error}"
        letter = JobDeadLetter(
            job=job,
            reason=reason[:_REASON_LIMIT],
            attempts=[*state.history, result],
            dead_at=datetime.now(UTC),
        )
        out.append(Outgoing(self._topics.dlq, record.key, letter.to_json()))
        if job_id:
            out.append(self._state.note_final(job_id, automation_id, ResultStatus.FAILED))
        revision = job.get("automation_revision")
        if (
            decision.endpoint_gone
            and outcome.error_kind is not ErrorKind.ENDPOINT_GONE
            and automation_id
            and isinstance(revision, int)
        ):
            out.append(self._state.note_gone(automation_id, revision, job_id))
        self._metrics.deliveries.labels(self._label, "failed").inc()
        self._metrics.action_dead_letters.labels(self._label).inc()
        return out

    async def _try_once(
        self, record: JobRecord, job: dict[str, Any], state: RetryState, attempt: int
    ) -> tuple[AttemptOutcome, Decision]:
        """Make the attempt (or fail it without a request) and decide what follows."""
        now = datetime.now(UTC)
        try:
            parse_action_job(record.value or b"")
        except ValidationError as exc:
            outcome = failed_outcome(ErrorKind.INVALID_JOB, _invalid_reason(exc), now)
            return outcome, Decision(
                Verdict.FAIL,
                ResultStatus.FAILED,
                final=True,
                dead_letter=True,
                reason="not retryable",
            )
        revision = job.get("automation_revision")
        gone = (
            self._state.gone(_text(job, "automation_id"), revision)
            if isinstance(revision, int)
            else None
        )
        if gone is not None:
            self._metrics.endpoints_gone_skipped.labels(self._label).inc()
            outcome = failed_outcome(
                ErrorKind.ENDPOINT_GONE,
                f"not sent: the endpoint answered 410 Gone for revision {gone.revision}; "
                "update the automation to send again",
                now,
            )
            return outcome, Decision(
                Verdict.GONE,
                ResultStatus.FAILED,
                final=True,
                endpoint_gone=True,
                dead_letter=True,
                reason="endpoint gone (410)",
            )
        outcome = await deliver(job, self._sender, self._secrets)
        if outcome.error_kind in (ErrorKind.NONE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION):
            self._metrics.delivery_seconds.labels(self._label).observe(outcome.duration_seconds)
        decision = decide(
            outcome,
            attempt=attempt,
            first_attempt_at=state.first_attempt_at or outcome.at,
            settings=self._settings,
            rng=self._rng,
            now=datetime.now(UTC),
        )
        return outcome, decision

    def _retry_record(
        self,
        record: JobRecord,
        state: RetryState,
        outcome: AttemptOutcome,
        result: ActionResult,
        decision: Decision,
    ) -> Outgoing:
        delay = decision.delay_seconds or 0.0
        tier = retry_tier(delay, self._settings)
        self._metrics.retries_scheduled.labels(self._label, f"{tier:g}s").inc()
        following = RetryState(
            attempts=result.attempt,
            first_attempt_at=state.first_attempt_at or outcome.at,
            due_at=result.next_attempt_at,
            history=[*state.history, result],
            origin=state.origin or f"{record.topic}/{record.partition}/{record.offset}",
        )
        return Outgoing(
            self._topics.retry_topic(tier), record.key, record.value, following.to_headers()
        )

    def _result_record(
        self, record: JobRecord, job: Mapping[str, Any], result: ActionResult
    ) -> Outgoing:
        automation_id = _text(job, "automation_id")
        key = automation_id.encode() if automation_id else record.key
        return Outgoing(self._topics.results, key, result.to_json())

    async def _dead_letter_raw(self, record: JobRecord) -> None:
        """A record that is not a JSON object: dead-lettered byte for byte, never attempted."""
        raw = record.value
        job = {
            "value_b64": None if raw is None else base64.b64encode(raw).decode("ascii"),
            "source_topic": record.topic,
            "source_partition": record.partition,
            "source_offset": record.offset,
        }
        letter = JobDeadLetter(
            job=job,
            reason="not an action job: the value is not a JSON object",
            attempts=[],
            dead_at=datetime.now(UTC),
        )
        self._metrics.action_dead_letters.labels(self._label).inc()
        self._metrics.deliveries.labels(self._label, "failed").inc()
        await self._pub.send_all([Outgoing(self._topics.dlq, record.key, letter.to_json())])
