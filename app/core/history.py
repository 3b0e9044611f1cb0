"""Execution history per automation: the last N executions and counters, from `action-results`.

Every match the worker makes (an event matched, a run automation fired) becomes one
record on `action-results` (keyed by automation id, the same `ActionResult` shape the
dispatchers write) with the headers below: PENDING when a job was sent to a
dispatcher's topic, FINISHED when the worker itself completed the action (a `kafka`
job produced, a `no_op`), FAILED when it could not (a reserved topic, a rendering
error). Dispatchers then add RETRYING, FINISHED or
FAILED for the same `job_id`. One agent folds these records into the `history` table
(pure logic here, the Faust part in app.stream.history_table).

Counters: `matched` counts worker records (a redelivered event whose job is still in
the window is not counted twice), `emitted` the jobs handed to Kafka, `finished` and
`failed` final outcomes, `last_fired_at` the latest match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.contract.jobs import job_id
from app.contract.results import ResultStatus
from app.contract.timestamps import iso_z
from app.core.matching import CompiledAutomation
from app.core.pipeline import Outbound, ProcessResult
from app.core.run_pipeline import RunResult
from app.serialization import JSONDecodeError, dumps, loads

__all__ = [
    "EVENT_TYPE_HEADER",
    "ORIGIN_HEADER",
    "REVISION_HEADER",
    "AutomationHistory",
    "ExecutionRecord",
    "HistoryCounters",
    "HistoryEntry",
    "ResultRecord",
    "WorkerMark",
    "apply_result",
    "empty_history",
    "execution_records",
    "fit_history",
    "read_result",
    "run_execution_records",
]

ORIGIN_HEADER = "hookstream-origin"
EVENT_TYPE_HEADER = "hookstream-event-type"
REVISION_HEADER = "hookstream-automation-revision"

_FINAL = frozenset({ResultStatus.FINISHED, ResultStatus.FAILED})
_FINAL_NAMES = frozenset(status.value for status in _FINAL)
_DETAIL_CHARS = 500


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _DETAIL_CHARS:
        return text
    return text[: _DETAIL_CHARS - 3] + "..."


class HistoryEntry(BaseModel):
    """One execution: a job and its latest status."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    event_id: str
    event_type: str | None = None
    action_type: str
    automation_revision: int | None = None
    status: ResultStatus
    matched_at: datetime | None = Field(default=None, description="when the worker matched")
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    reason: str | None = None
    response_body: str | None = None
    duration_seconds: float | None = None
    next_attempt_at: datetime | None = None


class HistoryCounters(BaseModel):
    """Totals since the automation's first execution (not only the kept window)."""

    model_config = ConfigDict(extra="ignore")

    matched: int = 0
    emitted: int = 0
    finished: int = 0
    failed: int = 0
    last_fired_at: datetime | None = None


class AutomationHistory(BaseModel):
    """What GET /automations/{id}/history answers; also the `history` table's value."""

    model_config = ConfigDict(extra="ignore")

    automation_id: str
    counters: HistoryCounters = Field(default_factory=HistoryCounters)
    executions: list[HistoryEntry] = Field(default_factory=list, description="newest first")


class ResultRecord(BaseModel):
    """The fields of an `action-results` record history uses; later additions are ignored."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(min_length=1)
    automation_id: str = Field(min_length=1)
    event_id: str
    action_type: str
    attempt: int = 0
    status: ResultStatus
    http_status: int | None = None
    error: str | None = None
    reason: str | None = None
    response_body: str | None = None
    duration_seconds: float | None = None
    at: datetime
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WorkerMark:
    """Headers of a record the worker wrote when it matched."""

    event_type: str | None
    revision: int | None


def _header_map(headers: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for key, value in items:
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            out[name] = value.decode("utf-8", "replace")
        elif value is not None:
            out[name] = str(value)
    return out


def read_result(
    value: bytes | None, headers: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None
) -> tuple[ResultRecord, WorkerMark | None] | None:
    """A record of `action-results` and its worker mark; None when unreadable."""
    if not value:
        return None
    try:
        record = ResultRecord.model_validate(loads(value))
    except (JSONDecodeError, ValidationError):
        return None
    found = _header_map(headers)
    if found.get(ORIGIN_HEADER) != "worker":
        return record, None
    revision = found.get(REVISION_HEADER, "")
    return record, WorkerMark(
        found.get(EVENT_TYPE_HEADER), int(revision) if revision.isdigit() else None
    )


def _ts(moment: datetime) -> str:
    # One fixed format (UTC, microseconds, Z) so that stored timestamps sort as text.
    return iso_z(moment.astimezone(UTC), "microseconds")


def _outcome(record: ResultRecord) -> dict[str, Any]:
    return {
        "status": record.status.value,
        "updated_at": _ts(record.at),
        "http_status": record.http_status,
        "error": _clip(record.error),
        "reason": _clip(record.reason),
        "response_body": _clip(record.response_body),
        "duration_seconds": record.duration_seconds,
        "next_attempt_at": None if record.next_attempt_at is None else _ts(record.next_attempt_at),
    }


def _new_entry(record: ResultRecord, mark: WorkerMark | None) -> dict[str, Any]:
    at = _ts(record.at)
    return {
        "job_id": record.job_id,
        "event_id": record.event_id,
        "event_type": mark.event_type if mark else None,
        "action_type": record.action_type,
        "automation_revision": mark.revision if mark else None,
        "matched_at": at if mark else None,
        "created_at": at,
        "attempts": record.attempt,
        **_outcome(record),
    }


def _count(counters: dict[str, Any], status: ResultStatus) -> None:
    if status is ResultStatus.FINISHED:
        counters["finished"] += 1
    elif status is ResultStatus.FAILED:
        counters["failed"] += 1


def _worker_record(
    counters: dict[str, Any],
    entries: list[dict[str, Any]],
    index: int | None,
    record: ResultRecord,
    mark: WorkerMark,
) -> None:
    existing = entries[index] if index is not None else None
    if existing is None or existing["matched_at"] is None:
        counters["matched"] += 1
        at = _ts(record.at)
        if counters["last_fired_at"] is None or at > counters["last_fired_at"]:
            counters["last_fired_at"] = at
        if record.action_type != "no_op" and record.status is not ResultStatus.FAILED:
            counters["emitted"] += 1
    if existing is None:
        _count(counters, record.status)
        entries.insert(0, _new_entry(record, mark))
        return
    assert index is not None
    # The job is known already (a redelivered event, or a dispatcher's record that
    # raced ahead): keep its status, fill what only the worker knows.
    entries[index] = {
        **existing,
        "event_type": existing["event_type"] or mark.event_type,
        "automation_revision": existing["automation_revision"] or mark.revision,
        "matched_at": existing["matched_at"] or _ts(record.at),
    }


# The most one execution can take in the table's JSON: three clipped details of
# 4-byte characters, ids, timestamps and names.
_ENTRY_BYTES = 3 * 4 * _DETAIL_CHARS + 1024


def fit_history(value: Mapping[str, Any], max_bytes: int) -> tuple[Mapping[str, Any], int]:
    """`value` with its oldest executions dropped until its JSON takes `max_bytes` at most.

    Returns the value and how many executions were dropped. Only a history that could
    be that large is measured (history_size entries at their largest).
    """
    entries = value["executions"]
    if len(entries) * _ENTRY_BYTES + 4096 <= max_bytes:
        return value, 0
    kept = list(entries)
    while len(dumps({**value, "executions": kept})) > max_bytes and kept:
        # Newest first: the oldest is the last; a tenth at a time bounds the passes.
        del kept[-max(len(kept) // 10, 1) :]
    dropped = len(entries) - len(kept)
    return ({**value, "executions": kept} if dropped else value), dropped


def empty_history(automation_id: str) -> dict[str, Any]:
    """The history of an automation that never fired, as the API returns it."""
    return AutomationHistory(automation_id=automation_id).model_dump(mode="json")


def apply_result(
    state: Mapping[str, Any] | None,
    record: ResultRecord,
    mark: WorkerMark | None,
    size: int,
) -> Mapping[str, Any]:
    """The history after one record: a new dict, or `state` itself when nothing changes.

    Plain dicts in the shape of AutomationHistory, not models: this runs for every
    record of `action-results` in the worker's event loop, and re-validating 50 entries
    per record would cost more than everything else the agent does.
    """
    base = state if state else empty_history(record.automation_id)
    counters = dict(base["counters"])
    entries = list(base["executions"])
    index = next((i for i, e in enumerate(entries) if e["job_id"] == record.job_id), None)
    if mark is not None:
        _worker_record(counters, entries, index, record, mark)
    elif index is None:
        _count(counters, record.status)
        entries.insert(0, _new_entry(record, None))
    else:
        existing = entries[index]
        final = existing["status"] in _FINAL_NAMES
        if final and record.status not in _FINAL:
            # A late PENDING or RETRYING never takes a final outcome back.
            return base
        if not final:
            _count(counters, record.status)
        entries[index] = {
            **existing,
            "attempts": max(existing["attempts"], record.attempt),
            **_outcome(record),
        }
    if len(entries) > 1 and entries[0]["created_at"] < entries[1]["created_at"]:
        entries.sort(key=lambda e: str(e["created_at"]), reverse=True)
    return {
        "automation_id": base["automation_id"],
        "counters": counters,
        "executions": entries[:size],
    }


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One record the worker writes to `action-results` for one match."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _status_of(
    action_type: str, sent_to: str | None, skipped: str | None, failed: str | None
) -> tuple[ResultStatus, str]:
    if failed is not None:
        return ResultStatus.FAILED, failed
    if sent_to is not None:
        if action_type == "kafka":
            # Producing the job is the whole action; no dispatcher reports on it.
            return ResultStatus.FINISHED, f"job produced to topic '{sent_to}'"
        return ResultStatus.PENDING, f"job sent to topic '{sent_to}'"
    if action_type == "no_op":
        return ResultStatus.FINISHED, skipped or "no_op action: nothing to send"
    return ResultStatus.FAILED, skipped or "not sent"


def execution_records(result: ProcessResult, now: datetime) -> list[ExecutionRecord]:
    """The `action-results` records of one processed event: one per matched automation."""
    event = result.event
    if event is None or not result.matched:
        return []
    event_type = event.event_type.value
    return _records(
        event.event_id,
        [(compiled, event_type) for compiled in result.matched],
        result.outbounds,
        result.skipped,
        result.failures,
        now,
    )


def run_execution_records(result: RunResult, now: datetime) -> list[ExecutionRecord]:
    """The `action-results` records of one run record: one per automation that fired.

    The event type is the automation's (``RUN_METRIC_CHANGE``...), as in the run's jobs;
    a record read again after a crash writes the same job ids, which history keeps once.
    """
    if result.event_id is None or not result.matched:
        return []
    return _records(
        result.event_id,
        [(rule.compiled, str(rule.automation.event)) for rule in result.matched],
        result.outbounds,
        result.skipped,
        result.failures,
        now,
    )


def _records(
    event_id: str,
    matched: Sequence[tuple[CompiledAutomation, str]],
    outbounds: Sequence[Outbound],
    skipped_by: Sequence[tuple[str, str]],
    failed_by: Sequence[tuple[str, str]],
    now: datetime,
) -> list[ExecutionRecord]:
    sent = {out.automation_id: out.topic for out in outbounds}
    skipped = dict(skipped_by)
    failed = dict(failed_by)
    at = iso_z(now.astimezone(UTC), "milliseconds")
    records = []
    for compiled, event_type in matched:
        status, reason = _status_of(
            compiled.action_type,
            sent.get(compiled.id),
            skipped.get(compiled.id),
            failed.get(compiled.id),
        )
        # The exact field set of app.contract.results.ActionResult (a test checks it).
        value = {
            "job_id": job_id(event_id, compiled.id, compiled.revision),
            "automation_id": compiled.id,
            "event_id": event_id,
            "action_type": compiled.action_type,
            "attempt": 0,
            "status": status.value,
            "http_status": None,
            "error_kind": "none",
            "error": None,
            # Clipped like every stored detail: the record stays small whatever failed.
            "reason": _clip(reason),
            "response_body": None,
            "response_truncated": False,
            "duration_seconds": 0.0,
            "at": at,
            "next_attempt_at": None,
            "final": status in _FINAL,
            "endpoint_gone": False,
        }
        headers = [
            (ORIGIN_HEADER, b"worker"),
            (EVENT_TYPE_HEADER, event_type.encode()),
            (REVISION_HEADER, str(compiled.revision).encode()),
        ]
        records.append(ExecutionRecord(compiled.id.encode(), dumps(value), headers))
    return records
