"""Run records in, action jobs (or a dead letter) out: the run-events path, without I/O.

``RunRules`` holds the run automations (kept in step with the automation index by the
worker) compiled for the fold, and answers, per (entity, project), which of them watch
which metric and how many values each metric must keep. ``RunPipeline.process`` parses
one record, reads the run's memory from a ``RunStore``, folds the record into it
(app.core.run_windows) and renders a job per firing through the event pipeline's job
layout (same fields, same deterministic ``job_id``). A record at or below the offset the
memory already holds is a replay after a crash: it is not folded again, and the jobs of
the firings it made the first time are rendered again, with the same job ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

from app.contract.automations import Automation
from app.contract.runs import (
    RunEventType,
    RunMetricEventFilter,
    RunMetricRecord,
    RunState,
    RunStateEventFilter,
    RunStateRecord,
    parse_run_record,
    run_event_filter,
)
from app.contract.timestamps import iso_z
from app.core.cloudevents import from_kafka
from app.core.matching import CompiledAutomation
from app.core.pipeline import MessageSource, Outbound, Pipeline, ProcessResult
from app.core.run_windows import (
    Condition,
    Firing,
    RunMemory,
    Verdict,
    compile_condition,
    fold_metrics,
    fold_state,
)
from app.errors import InvalidEventError
from app.lang.filters import CompiledFilter, compile_filter
from app.lang.templating import TemplateVariables
from app.serialization import loads

__all__ = [
    "MemoryRunStore",
    "RunPipeline",
    "RunResult",
    "RunRule",
    "RunRules",
    "RunStore",
    "ScopedRules",
    "run_document",
    "run_event_id",
    "run_variables",
]


class RunRule:
    """One run automation compiled for the fold."""

    __slots__ = ("automation", "compiled", "condition", "cooldown", "entity", "id", "project",
                 "run_filter", "states")  # fmt: skip

    def __init__(self, compiled: CompiledAutomation) -> None:
        automation = compiled.automation
        assert isinstance(automation.event, RunEventType)
        spec = run_event_filter(automation.event, automation.filter)
        raw = spec.run_filter
        self.compiled = compiled
        self.automation: Automation = automation
        self.id = compiled.id
        self.run_filter: CompiledFilter = compile_filter(
            loads(raw) if isinstance(raw, str) else raw, run=True
        )
        self.condition: Condition | None = None
        self.states: frozenset[RunState] = frozenset()
        if isinstance(spec, RunMetricEventFilter):
            chosen = spec.run_metric_filter.chosen
            assert chosen is not None
            self.condition = compile_condition(chosen)
        else:
            assert isinstance(spec, RunStateEventFilter)
            self.states = frozenset(spec.run_state_filter.states)
        cooldown = automation.cooldown_seconds
        self.cooldown: float | None = float(cooldown) if cooldown else None
        scope = automation.scope
        self.entity = scope.entity
        self.project: str | None = getattr(scope, "project", None)

    def __repr__(self) -> str:
        return f"RunRule({self.id!r})"


@dataclass(slots=True)
class ScopedRules:
    """The run automations of one (entity, project), arranged for the fold."""

    by_metric: dict[str, tuple[RunRule, ...]] = field(default_factory=dict)
    need: dict[str, int] = field(default_factory=dict)
    states: tuple[tuple[RunRule, frozenset[RunState]], ...] = ()
    # True when every rule's run filter is empty: no run document is built then.
    any_run_filter: bool = False


class RunRules:
    """Every enabled run automation, by scope; rebuilt per scope lazily after a change."""

    __slots__ = ("_by_id", "_scoped")

    def __init__(self, automations: Sequence[CompiledAutomation] = ()) -> None:
        self._by_id: dict[str, RunRule] = {}
        self._scoped: dict[tuple[str, str], ScopedRules] = {}
        for compiled in automations:
            self.upsert(compiled)

    def upsert(self, compiled: CompiledAutomation) -> None:
        """Add or replace a run automation (a disabled one is dropped)."""
        self._by_id.pop(compiled.id, None)
        if compiled.enabled and compiled.automation.is_run_automation:
            self._by_id[compiled.id] = RunRule(compiled)
        self._scoped.clear()

    def remove(self, automation_id: str) -> None:
        """Drop a run automation (no-op when unknown)."""
        if self._by_id.pop(automation_id, None) is not None:
            self._scoped.clear()

    def get(self, automation_id: str) -> RunRule | None:
        """The rule of one automation id, or None."""
        return self._by_id.get(automation_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def scoped(self, entity: str, project: str) -> ScopedRules:
        """The rules whose project or entity scope contains ``entity/project``."""
        key = (entity, project)
        found = self._scoped.get(key)
        if found is not None:
            return found
        by_metric: dict[str, list[RunRule]] = {}
        states: list[tuple[RunRule, frozenset[RunState]]] = []
        any_filter = False
        for rule in sorted(self._by_id.values(), key=lambda r: r.id):
            if rule.entity != entity or (rule.project is not None and rule.project != project):
                continue
            any_filter = any_filter or not rule.run_filter.is_empty
            if rule.condition is not None:
                by_metric.setdefault(rule.condition.metric, []).append(rule)
            else:
                states.append((rule, rule.states))
        need = {
            name: max(rule.condition.need for rule in rules if rule.condition is not None)
            for name, rules in by_metric.items()
        }
        found = ScopedRules(
            {name: tuple(rules) for name, rules in by_metric.items()},
            need,
            tuple(states),
            any_filter,
        )
        if len(self._scoped) > 100_000:
            self._scoped.clear()  # bounded: one entry per (entity, project) seen
        self._scoped[key] = found
        return found


class RunStore(Protocol):
    """Run memories by run path: the Faust table wrapper, or a dict for tests/evaluate."""

    def get(self, run_path: str) -> RunMemory | None:
        """The memory of one run, or None."""
        ...

    def put(self, run_path: str, memory: RunMemory) -> None:
        """Record that ``memory`` (possibly the object ``get`` returned) changed."""
        ...


class MemoryRunStore:
    """A RunStore in a dict."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, RunMemory] = {}

    def get(self, run_path: str) -> RunMemory | None:
        """The memory of one run, or None."""
        return self.data.get(run_path)

    def put(self, run_path: str, memory: RunMemory) -> None:
        """Keep ``memory``."""
        self.data[run_path] = memory


def run_document(record: RunMetricRecord | RunStateRecord) -> dict[str, Any]:
    """The fields a run filter sees (app.lang.filters.RUN_FIELDS, config.<path>)."""
    run = record.run
    state = record.state.value if isinstance(record, RunStateRecord) else run.state
    doc: dict[str, Any] = {
        "id": run.id,
        "tags": run.tags,
        "config": run.config,
        "entity": record.entity,
        "project": record.project,
    }
    if run.name is not None:
        doc["display_name"] = doc["name"] = run.name
    if run.user is not None:
        doc["user"] = doc["username"] = run.user
    if state is not None:
        doc["state"] = str(state)
    return doc


def run_event_id(record: RunMetricRecord | RunStateRecord, partition: int, offset: int) -> str:
    """The record's event_id, or one made of its place in the topic (stable on replay)."""
    if record.event_id is not None:
        return record.event_id
    return f"{record.run_path}@{partition}:{offset}"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def run_variables(
    record: RunMetricRecord | RunStateRecord,
    event_type: RunEventType,
    event_id: str,
    firing: Firing,
) -> TemplateVariables:
    """Every template variable of one firing (W&B's names plus metric_name/value, step)."""
    run = record.run
    state = record.state.value if isinstance(record, RunStateRecord) else (run.state or "")
    return TemplateVariables(
        {
            "event_type": event_type.value,
            "event_author": run.user or "",
            "entity_name": record.entity,
            "project_name": record.project,
            "event_id": event_id,
            "occurred_at": record.occurred_at.isoformat(),
            "run_id": run.id,
            "run_name": run.name or "",
            "run_path": record.run_path,
            "run_state": str(state),
            "metric_name": firing.metric or "",
            "metric_value": _number(firing.value),
            "step": "" if firing.step is None else str(firing.step),
        },
        {},
    )


@dataclass(slots=True)
class RunResult:
    """What one run record produced; exactly one of ``record`` and ``dead_letter`` is set."""

    record: RunMetricRecord | RunStateRecord | None = None
    run_path: str | None = None
    memory: RunMemory | None = None
    firings: list[Firing] = field(default_factory=list)
    # The record's event id (set when it fired), and the rules that fired, in order.
    event_id: str | None = None
    matched: list[RunRule] = field(default_factory=list)
    outbounds: list[Outbound] = field(default_factory=list)
    # (automation id, why a firing sends nothing): a no_op, a reserved kafka topic.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    replayed: bool = False
    dead_letter: bytes | None = None
    # The dead letter's Kafka key: the record's, or None when it had to be cut.
    dead_letter_key: bytes | None = None
    reason: str | None = None
    error_code: str | None = None


class RunPipeline:
    """Run-record bytes in, action jobs or a dead letter out; the memory is the caller's."""

    __slots__ = ("pipeline", "rules")

    def __init__(self, pipeline: Pipeline, rules: RunRules) -> None:
        self.pipeline = pipeline
        self.rules = rules

    def process(
        self,
        raw: bytes | None,
        *,
        store: RunStore,
        source: MessageSource,
        trace: list[Verdict] | None = None,
    ) -> RunResult:
        """Validate, fold into the run's memory, and render a job per firing.

        ``trace`` (dry runs, ``evaluate``) gets why each automation looked at fired or not.
        """
        pipeline = self.pipeline
        unread = pipeline.unreadable(raw, source)
        if unread is not None:
            return _dead(unread)
        assert raw is not None  # a null value is unreadable
        try:
            # A CloudEvent (binary or structured mode) carries the run record as its data.
            payload = from_kafka(source.headers, raw) if source.headers else raw
            record, received = parse_run_record(payload, pipeline.max_event_bytes)
        except InvalidEventError as exc:
            return _dead(pipeline.dead_letter(raw, source, exc))
        path = record.run_path
        result = RunResult(record=record, run_path=path)
        scoped = self.rules.scoped(record.entity, record.project)
        memory = store.get(path)
        offset = source.offset
        if memory is not None and offset <= memory.offset:
            result.replayed = True
            result.firings = memory.replayed(offset)
        else:
            if memory is None:
                # Nothing watches this run (yet): no memory is kept for it.
                if isinstance(record, RunMetricRecord):
                    if not any(name in scoped.by_metric for name in record.metrics):
                        return result
                elif not scoped.states:
                    return result
                memory = RunMemory()
            result.firings = self._fold(memory, record, offset, scoped, trace)
            store.put(path, memory)
            result.memory = memory
        if result.firings:
            self._render(record, received, source, result)
        return result

    def _fold(
        self,
        memory: RunMemory,
        record: RunMetricRecord | RunStateRecord,
        offset: int,
        scoped: ScopedRules,
        trace: list[Verdict] | None,
    ) -> list[Firing]:
        doc = run_document(record) if scoped.any_run_filter else None

        def run_matches(rule: Any) -> bool:
            run_filter: CompiledFilter = rule.run_filter
            return doc is None or run_filter.matches(doc)

        occurred = record.occurred_at.timestamp()
        if isinstance(record, RunMetricRecord):
            return fold_metrics(
                memory,
                offset,
                record.step,
                record.metrics,
                scoped.by_metric,
                scoped.need,
                occurred,
                run_matches,
                trace,
            )
        return fold_state(memory, offset, record.state, scoped.states, occurred, run_matches, trace)

    def _render(
        self,
        record: RunMetricRecord | RunStateRecord,
        received: dict[str, Any],
        source: MessageSource,
        result: RunResult,
    ) -> None:
        event_id = run_event_id(record, source.partition, source.offset)
        created_at = self.pipeline.clock().astimezone(UTC)
        jobs = ProcessResult()
        result.event_id = event_id
        for firing in result.firings:
            rule = self.rules.get(firing.automation_id)
            if rule is None:
                continue  # deleted or disabled since it fired: nothing to repeat
            result.matched.append(rule)
            event_type = rule.automation.event
            assert isinstance(event_type, RunEventType)
            common: dict[str, Any] = {
                "event_id": event_id,
                "event_type": event_type.value,
                "created_at": iso_z(created_at, "milliseconds"),
                "previous_version": None,
            }
            variables = run_variables(record, event_type, event_id, firing)
            try:
                self.pipeline.emit(rule.compiled, event_id, variables, common, received, jobs)
            except Exception as exc:  # one broken automation must not stop the others
                result.failures.append((rule.id, f"{type(exc).__name__}: {exc}"))
        result.outbounds = jobs.outbounds
        result.skipped.extend(jobs.skipped)
        result.failures.extend(jobs.failures)


def _dead(processed: ProcessResult) -> RunResult:
    return RunResult(
        dead_letter=processed.dead_letter,
        dead_letter_key=processed.dead_letter_key,
        reason=processed.reason,
        error_code=processed.error_code,
    )
