"""Dry runs: match and render one event against one automation, emitting nothing.

The rendered job comes from the workers' own Pipeline (same matching, same
templates, same topic choice), over an index holding only this automation. A
disabled automation is rendered as if enabled, so its job can be reviewed before
enabling it; `matched` stays false and the reasons say it is disabled. Alias
pointers start empty, so `previous_version` is null in dry runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.api.events import parse_http_event
from app.api.examples import example_event
from app.api.problems import ApiError
from app.contract.automations import Automation
from app.core.explain import explain
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.serialization import dumps, loads
from app.settings import Settings

__all__ = ["DRY_RUN_TOPIC", "dry_run", "dry_run_of_request"]

DRY_RUN_TOPIC = "dry-run"


def dry_run(
    automation: Automation,
    event_raw: bytes | None,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dry-run answer: matched, reasons, the rendered job and its topic."""
    clock = now or datetime.now(UTC)
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


def dry_run_of_request(
    automation: Automation, event_raw: bytes | None, settings: Settings
) -> dict[str, Any]:
    """`dry_run` for a request: an invalid event's errors name `event.<field>`."""
    try:
        return dry_run(automation, event_raw, settings)
    except ApiError as exc:
        raise exc.prefixed("event") from None
