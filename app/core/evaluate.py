"""Offline evaluation: automations x events -> action jobs, with the workers' own pipeline.

stdout gets one action job per line (JSON), exactly the value a worker would produce,
in event order and, per event, in automation-id order (scope-wide automations first).
Only jobs a worker would send to a topic are printed: a `no_op` match sends nothing,
and neither does a kafka action aimed at a reserved topic. stderr gets
``line N: <reason>`` for each invalid event; the run goes on. Exit 0 when all input
was read, 2 when the automations are invalid or a file cannot be read.

Run records (``event_type`` RUN_METRIC or RUN_STATE, or every record with ``runs``) go
through the run agent's RunPipeline, in file order, over one in-memory run state, so
windows, edges and cooldowns behave as on the worker. The input is JSON lines or one
JSON array. With ``explain``, stdout gets one JSON object per record instead: whether
each automation fires on it and why not (app.core.explain, app.core.run_explain), with
the jobs rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.contract.automations import Automation
from app.core.explain import explain as explain_event
from app.core.loader import iter_records, load_automations
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, ProcessResult, SourceInfo
from app.core.run_explain import RunExplainer, is_run_record
from app.core.run_pipeline import RunPipeline, RunRules
from app.errors import InvalidAutomationError
from app.serialization import dumps_str, loads
from app.settings import Settings

__all__ = ["run_evaluate"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_evaluate(
    automations_path: str | Path,
    events_path: str | Path,
    out: TextIO,
    err: TextIO,
    *,
    settings: Settings | None = None,
    clock: Callable[[], datetime] = _utcnow,
    explain: bool = False,
    runs: bool = False,
) -> int:
    """Run the contract's offline evaluation; returns the exit code."""
    settings = settings if settings is not None else Settings()
    try:
        loaded = load_automations(automations_path)
        automations = [automation for _, automation in loaded]
        index = AutomationIndex(automations)
    except InvalidAutomationError as exc:
        err.write(f"error: invalid automations in {automations_path}:\n")
        for field, reason in exc.errors:
            err.write(f"  {field}: {reason}\n")
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"error: cannot read automations {automations_path}: {exc}\n")
        return 2
    pipeline = Pipeline.from_settings(index, settings, clock=clock)
    # The run agent's pipeline over the same automations (RunRules keeps the enabled ones).
    run_rules = RunRules(list(index))
    explainer = RunExplainer(RunPipeline(pipeline, run_rules), automations)
    aliases = MemoryAliasStore()
    topic = str(events_path)
    try:
        for label, number, raw in iter_records(events_path):
            source = SourceInfo(topic, 0, number)
            if runs or is_run_record(raw):
                explained = explainer.feed(raw, source)
                verdicts = explained.as_json()
                refused = explained.result.reason
                failures = explained.result.failures
                outbounds = explained.result.outbounds
            else:
                processed = pipeline.process(raw, aliases=aliases, source=source)
                verdicts = _event_verdicts(processed, automations) if explain else {}
                refused = processed.reason
                failures = processed.failures
                outbounds = processed.outbounds
            if explain:
                _print(out, {label: number, **verdicts})
            if refused is not None:
                err.write(f"{label} {number}: {refused}\n")
                continue
            for automation_id, why in failures:
                err.write(f"{label} {number}: automation {automation_id} failed: {why}\n")
            if not explain:
                for outbound in outbounds:
                    out.write(outbound.value.decode())
                    out.write("\n")
    except OSError as exc:
        err.write(f"error: cannot read events {events_path}: {exc}\n")
        return 2
    return 0


def _print(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(dumps_str(obj))
    out.write("\n")


def _event_verdicts(processed: ProcessResult, automations: list[Automation]) -> dict[str, Any]:
    """An artifact or registry event's verdicts, in the shape of a run record's."""
    event = processed.event
    if event is None:
        return {
            "event_type": None,
            "reason": processed.reason,
            "error_code": processed.error_code,
            "automations": [],
        }
    sent = {o.automation_id: o for o in processed.outbounds}
    notes: dict[str, list[str]] = {}
    for automation_id, reason in (*processed.skipped, *processed.failures):
        notes.setdefault(automation_id, []).append(reason)
    verdicts = []
    for automation in sorted(automations, key=lambda a: a.id):
        if automation.is_run_automation:
            continue
        explanation = explain_event(automation, event)
        outbound = sent.get(automation.id)
        verdicts.append(
            {
                "automation_id": automation.id,
                "fired": explanation.matched,
                "reasons": explanation.reasons,
                "job": None if outbound is None else loads(outbound.value),
                "topic": None if outbound is None else outbound.topic,
                "notes": notes.get(automation.id, []),
            }
        )
    return {
        "event_type": event.event_type.value,
        "event_id": event.event_id,
        "automations": verdicts,
    }
