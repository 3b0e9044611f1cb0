"""Dry runs: match and render one event against one automation, emitting nothing.

The rendered job comes from the workers' own Pipeline (same matching, same
templates, same topic choice), over an index holding only this automation. A
disabled automation is rendered as if enabled, so its job can be reviewed before
enabling it; `matched` stays false and the reasons say it is disabled. Alias
pointers start empty, so `previous_version` is null in dry runs.

A run automation takes one run record or a JSON array of them (or generates a few that
cross its condition): they go, in order, through the run agent's own RunPipeline over a
fresh run state (app.core.run_explain), and `records` says for each whether it fires,
why not, and its job. An invalid record is refused (4xx) with the reason its dead
letter would carry, naming `event.<index>.<field>` for an array.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.api.events import event_refusal, parse_http_event
from app.api.examples import example_event, example_run_records
from app.api.problems import ApiError
from app.contract.automations import Automation
from app.contract.runs import parse_run_record
from app.core.explain import explain
from app.core.matching import AutomationIndex, CompiledAutomation
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.core.run_explain import RunExplainer
from app.core.run_pipeline import RunPipeline, RunRules
from app.errors import InvalidEventError
from app.serialization import JSONDecodeError, dumps, loads
from app.settings import Settings

__all__ = [
    "DRY_RUN_TOPIC",
    "MAX_DRY_RUN_RECORDS",
    "dry_run",
    "dry_run_of_request",
    "dry_run_records",
]

DRY_RUN_TOPIC = "dry-run"


def dry_run(
    automation: Automation,
    event_raw: bytes | None,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dry-run answer: matched, reasons, the rendered job and its topic."""
    clock = now or datetime.now(UTC)
    if automation.is_run_automation:
        return dry_run_records(automation, event_raw, settings, clock)
    generated = event_raw is None
    raw = dumps(example_event(automation, clock)) if event_raw is None else event_raw
    event, received = parse_http_event(raw, settings.max_event_bytes)
    explanation = explain(automation, event)
    pipeline = Pipeline.from_settings(
        AutomationIndex([automation.model_copy(update={"enabled": True})]),
        settings,
        clock=lambda: clock,
    )
    result = pipeline.process(raw, aliases=MemoryAliasStore(), source=SourceInfo(DRY_RUN_TOPIC))
    job: dict[str, Any] | None = None
    topic: str | None = None
    if result.outbounds:
        out = result.outbounds[0]
        job, topic = loads(out.value), out.topic
    notes = [reason for _, reason in (*result.skipped, *result.failures)]
    return {
        "automation_id": automation.id,
        "matched": explanation.matched,
        "reasons": explanation.reasons,
        "job": job,
        "topic": topic,
        "notes": notes,
        "event": received,
        "event_generated": generated,
    }


# A dry run is one request's work: this many records at most.
MAX_DRY_RUN_RECORDS = 10_000


def _run_records(event_raw: bytes, settings: Settings) -> tuple[list[bytes], bool]:
    """The records of a request (one object or an array); refused as dead letters would be."""
    try:
        parsed = loads(event_raw)
    except JSONDecodeError:
        parsed = None  # parse_run_record names the JSON error
    if not isinstance(parsed, list):
        _check_record(event_raw, settings, None)
        return [event_raw], False
    if not parsed:
        raise ApiError(
            422,
            "no run records: give one record or a non-empty array",
            errors=[("", "expected at least one run record")],
        )
    if len(parsed) > MAX_DRY_RUN_RECORDS:
        raise ApiError(413, f"{len(parsed)} run records; a dry run takes {MAX_DRY_RUN_RECORDS}")
    raws = [dumps(item) for item in parsed]
    for index, raw in enumerate(raws):
        _check_record(raw, settings, index)
    return raws, True


def _check_record(raw: bytes, settings: Settings, index: int | None) -> None:
    try:
        parse_run_record(raw, settings.max_event_bytes)
    except InvalidEventError as exc:
        where = "invalid run record" if index is None else f"invalid run record {index}"
        refusal = event_refusal(exc, where)
        raise (refusal if index is None else refusal.prefixed(str(index))) from None


def dry_run_records(
    automation: Automation, event_raw: bytes | None, settings: Settings, clock: datetime
) -> dict[str, Any]:
    """The dry run of a run automation over run records (given or generated)."""
    generated = event_raw is None
    if event_raw is None:
        raws, many = [dumps(r) for r in example_run_records(automation, clock)], True
    else:
        raws, many = _run_records(event_raw, settings)
    enabled = automation.model_copy(update={"enabled": True})
    pipeline = Pipeline.from_settings(AutomationIndex([enabled]), settings, clock=lambda: clock)
    runs = RunPipeline(pipeline, RunRules([CompiledAutomation(enabled)]))
    explainer = RunExplainer(runs, [enabled])
    records: list[dict[str, Any]] = []
    received: list[Any] = []
    first: dict[str, Any] | None = None
    last_reasons: list[str] = []
    notes: list[str] = []
    for index, raw in enumerate(raws):
        explained = explainer.feed(raw, SourceInfo(DRY_RUN_TOPIC, 0, index))
        assert explained.result.record is not None  # every record was checked
        received.append(loads(raw))
        verdict = explained.verdicts[0].as_json()
        records.append({"index": index, **explained.as_json(), **verdict})
        del records[-1]["automations"]
        notes.extend(verdict["notes"])
        if verdict["fired"] and first is None:
            first = verdict
        last_reasons = verdict["reasons"]
    reasons = [] if automation.enabled else ["automation is disabled"]
    if first is None:
        reasons.extend(last_reasons or ["no record fires"])
    return {
        "automation_id": automation.id,
        "matched": automation.enabled and first is not None,
        "reasons": reasons,
        "job": None if first is None else first["job"],
        "topic": None if first is None else first["topic"],
        "notes": notes,
        "event": received if many else received[0],
        "event_generated": generated,
        "records": records,
    }


def dry_run_of_request(
    automation: Automation, event_raw: bytes | None, settings: Settings
) -> dict[str, Any]:
    """`dry_run` for a request: an invalid event's errors name `event.<field>`."""
    try:
        return dry_run(automation, event_raw, settings)
    except ApiError as exc:
        raise exc.prefixed("event") from None
