"""Why run automations fire or not, record by record: dry runs and ``hookstream evaluate``.

``RunExplainer`` feeds records, in order, through the worker's own ``RunPipeline`` (the
same parse, fold and rendering, over a ``MemoryRunStore``) with a trace, and answers
for each record and each automation: fired or not, and why not (the condition's value,
the window it read, the edge, the cooldown, the run filter). Automations the fold never
looked at get the reason it skipped them (disabled, scope, record type, metric absent).
No decision is made here: the firings are the pipeline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.contract.automations import Automation
from app.contract.runs import RunEventType, RunMetricRecord, RunStateRecord
from app.core.matching import CompiledAutomation
from app.core.pipeline import MessageSource, Outbound
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunResult, RunRule, run_document
from app.core.run_windows import Verdict
from app.serialization import JSONDecodeError, loads

__all__ = ["AutomationVerdict", "RecordExplanation", "RunExplainer", "is_run_record"]

_RUN_RECORD_TYPES = (b'"RUN_METRIC"', b'"RUN_STATE"')


def is_run_record(raw: bytes) -> bool:
    """Whether a message is meant as a run record (its ``event_type`` is a run type)."""
    if not any(kind in raw for kind in _RUN_RECORD_TYPES):
        return False
    try:
        obj = loads(raw)
    except JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("event_type") in ("RUN_METRIC", "RUN_STATE")


@dataclass(slots=True)
class AutomationVerdict:
    """One automation on one record."""

    automation_id: str
    fired: bool
    reasons: list[str] = field(default_factory=list)
    metric: str | None = None
    value: float | None = None
    window: list[float] | None = None
    outbound: Outbound | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The verdict as dry runs and ``evaluate --explain`` print it."""
        out = self.outbound
        return {
            "automation_id": self.automation_id,
            "fired": self.fired,
            "reasons": self.reasons,
            "metric": self.metric,
            "value": self.value,
            "window": self.window,
            "job": None if out is None else loads(out.value),
            "topic": None if out is None else out.topic,
            "notes": self.notes,
        }


@dataclass(slots=True)
class RecordExplanation:
    """What one record did: a verdict per automation, or why the record is invalid."""

    result: RunResult
    verdicts: list[AutomationVerdict] = field(default_factory=list)

    @property
    def invalid(self) -> bool:
        """Whether the record is refused (a dead letter on the worker)."""
        return self.result.record is None

    def as_json(self) -> dict[str, Any]:
        """The record's summary and verdicts."""
        record = self.result.record
        if record is None:
            return {
                "event_type": None,
                "reason": self.result.reason,
                "error_code": self.result.error_code,
                "automations": [],
            }
        return {
            "event_type": record.event_type,
            "run_path": record.run_path,
            "step": record.step if isinstance(record, RunMetricRecord) else None,
            "state": record.state.value if isinstance(record, RunStateRecord) else None,
            "event_id": self.result.event_id,
            "automations": [verdict.as_json() for verdict in self.verdicts],
        }


def _scope_reasons(automation: Automation, record: RunMetricRecord | RunStateRecord) -> list[str]:
    scope = automation.scope
    out: list[str] = []
    if scope.entity != record.entity:
        out.append(f"scope entity is '{scope.entity}' but the record's entity is '{record.entity}'")
    project: str | None = getattr(scope, "project", None)
    if project is not None and project != record.project:
        out.append(f"scope project is '{project}' but the record's project is '{record.project}'")
    return out


def _skipped_reasons(rule: RunRule, record: RunMetricRecord | RunStateRecord) -> list[str]:
    """Why the fold never looked at this automation for this record."""
    automation = rule.automation
    reasons = [] if automation.enabled else ["automation is disabled"]
    reasons.extend(_scope_reasons(automation, record))
    event = automation.event
    if isinstance(record, RunStateRecord):
        if event is not RunEventType.RUN_STATE:
            reasons.append(f"a RUN_STATE record; {event} automations watch RUN_METRIC records")
    elif rule.condition is None:
        reasons.append("a RUN_METRIC record; RUN_STATE automations watch RUN_STATE records")
    elif rule.condition.metric not in record.metrics:
        logged = ", ".join(sorted(record.metrics)[:20])
        reasons.append(f"the record has no metric '{rule.condition.metric}' (it logs {logged})")
    return reasons or ["not evaluated for this record"]


class RunExplainer:
    """Run records in order through ``runs``, explained for ``automations`` (any enabled)."""

    __slots__ = ("_rules", "runs", "store")

    def __init__(self, runs: RunPipeline, automations: Sequence[Automation]) -> None:
        self.runs = runs
        self.store = MemoryRunStore()
        ordered = sorted(automations, key=lambda a: a.id)
        self._rules = [RunRule(CompiledAutomation(a)) for a in ordered if a.is_run_automation]

    def feed(self, raw: bytes | None, source: MessageSource) -> RecordExplanation:
        """Process one record (after the ones fed before it) and explain it."""
        trace: list[Verdict] = []
        result = self.runs.process(raw, store=self.store, source=source, trace=trace)
        explanation = RecordExplanation(result)
        record = result.record
        if record is None:
            return explanation
        traced = {verdict.automation_id: verdict for verdict in trace}
        sent = {out.automation_id: out for out in result.outbounds}
        notes: dict[str, list[str]] = {}
        for automation_id, reason in (*result.skipped, *result.failures):
            notes.setdefault(automation_id, []).append(reason)
        doc: dict[str, Any] | None = None
        for rule in self._rules:
            verdict = traced.get(rule.id)
            if verdict is None:
                explanation.verdicts.append(
                    AutomationVerdict(rule.id, False, _skipped_reasons(rule, record))
                )
                continue
            reasons = [] if verdict.reason is None else [verdict.reason]
            if not verdict.fired and not rule.run_filter.is_empty:
                doc = doc if doc is not None else run_document(record)
                reasons.extend(rule.run_filter.explain(doc))
            explanation.verdicts.append(
                AutomationVerdict(
                    rule.id,
                    verdict.fired,
                    reasons,
                    verdict.metric,
                    verdict.value,
                    verdict.window,
                    sent.get(rule.id),
                    notes.get(rule.id, []),
                )
            )
        return explanation
