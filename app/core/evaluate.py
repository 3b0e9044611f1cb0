"""Offline evaluation: automations x events -> action jobs, with the workers' own pipeline.

stdout gets one action job per line (JSON), exactly the value a worker would produce,
in event order and, per event, in automation-id order (scope-wide automations first).
Only jobs a worker would send to a topic are printed: a `no_op` match sends nothing,
and neither does a kafka action aimed at a reserved topic. stderr gets
``line N: <reason>`` for each invalid event; the run goes on. Exit 0 when all input
was read, 2 when the automations are invalid or a file cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.core.loader import iter_event_lines, load_automations
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.errors import InvalidAutomationError
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
) -> int:
    """Run the contract's offline evaluation; returns the exit code."""
    settings = settings if settings is not None else Settings()
    try:
        loaded = load_automations(automations_path)
        index = AutomationIndex(automation for _, automation in loaded)
    except InvalidAutomationError as exc:
        err.write(f"error: invalid automations in {automations_path}:\n")
        for field, reason in exc.errors:
            err.write(f"  {field}: {reason}\n")
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"error: cannot read automations {automations_path}: {exc}\n")
        return 2
    pipeline = Pipeline.from_settings(index, settings, clock=clock)
    aliases = MemoryAliasStore()
    topic = str(events_path)
    try:
        for number, raw in iter_event_lines(events_path):
            result = pipeline.process(raw, aliases=aliases, source=SourceInfo(topic, 0, number))
            if result.reason is not None:
                err.write(f"line {number}: {result.reason}\n")
                continue
            for automation_id, reason in result.failures:
                err.write(f"line {number}: automation {automation_id} failed: {reason}\n")
            for outbound in result.outbounds:
                out.write(outbound.value.decode())
                out.write("\n")
    except OSError as exc:
        err.write(f"error: cannot read events {events_path}: {exc}\n")
        return 2
    return 0
