"""Run-metric decisions as pure functions: window aggregates, conditions, edge firing.

A run's memory (``RunMemory``) holds, per metric some automation needs, the last values
that the widest of those automations needs, and per automation whether its condition
held at the last value it saw. ``fold_metrics`` appends one record's values and returns
the automations whose condition *became* true (the edge), outside their cooldown;
``fold_state`` does the same for a run entering a state. The memory also keeps a short
log of its firings by offset, so a record read again after a crash fires again exactly
what it fired the first time (same job ids), without folding it twice.

Definitions (docs/contract.md "Run automations"):

- threshold: the latest value (``agg_op`` null) or MAX/MIN/AVERAGE of the last
  ``window_size`` values, compared with ``threshold`` by ``cmp_op``;
- change: the aggregate of the last ``current_window_size`` values against the aggregate
  of the ``prior_window_size`` values before them (latest against the one before when
  ``agg_op`` is null); ABSOLUTE is the difference, RELATIVE the difference over
  ``|prior|`` (undefined when prior is 0); INCREASE needs change >= amount, DECREASE
  -change >= amount, ANY |change| >= amount;
- zscore: (latest - mean) / std of the ``window_size`` values before the latest
  (population std; undefined when it is 0); INCREASE z >= t, DECREASE z <= -t, ANY |z| >= t.

A condition is undefined (so not true) until the run has logged enough values.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from app.contract.runs import ChangeFilter, RunState, ThresholdFilter, ZScoreFilter
from app.serialization import dumps, loads

__all__ = [
    "FIRING_LOG_SIZE",
    "TERMINAL_STATES",
    "Condition",
    "Firing",
    "RunMemory",
    "Verdict",
    "WatchedRule",
    "compile_condition",
    "fold_metrics",
    "fold_state",
    "state_matches",
]

# Firings remembered per run for replays after a crash: far more than a run fires (on
# edges) between two commits of its partition (a commit every second by default). Each
# entry is part of every changelog record of the run, so the log is kept short.
FIRING_LOG_SIZE: Final = 16

TERMINAL_STATES: Final = frozenset(
    {RunState.FINISHED, RunState.FAILED, RunState.CRASHED, RunState.KILLED}
)

_CMP: Final[dict[str, Callable[[float, float], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$eq": operator.eq,
    "$ne": operator.ne,
}


def _avg(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


_AGG: Final[dict[str | None, Callable[[Sequence[float]], float]]] = {
    "MAX": max,
    "MIN": min,
    "AVERAGE": _avg,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled metric condition: ``evaluate(values)`` -> (holds, metric value) or None.

    ``need`` is how many of the latest values it reads; None means undefined yet.
    """

    metric: str
    need: int
    evaluate: Callable[[Sequence[float]], tuple[bool, float] | None]


def _threshold(spec: ThresholdFilter) -> Condition:
    compare = _CMP[spec.cmp_op]
    threshold = float(spec.threshold)
    if spec.agg_op is None:

        def latest(values: Sequence[float]) -> tuple[bool, float] | None:
            value = values[-1]
            return compare(value, threshold), value

        return Condition(spec.name, 1, latest)
    agg = _AGG[spec.agg_op]
    size = spec.window_size

    def windowed(values: Sequence[float]) -> tuple[bool, float] | None:
        if len(values) < size:
            return None
        value = agg(values[-size:])
        return compare(value, threshold), value

    return Condition(spec.name, size, windowed)


def _direction(kind: str, amount: float) -> Callable[[float], bool]:
    if kind == "INCREASE":
        return lambda change: change >= amount
    if kind == "DECREASE":
        return lambda change: -change >= amount
    return lambda change: abs(change) >= amount


def _change(spec: ChangeFilter) -> Condition:
    agg = _AGG[spec.agg_op] if spec.agg_op is not None else None
    current = spec.current_window_size if agg is not None else 1
    prior = spec.prior_size if agg is not None else 1
    need = current + prior
    relative = spec.change_type == "RELATIVE"
    passes = _direction(spec.change_dir, float(spec.change_amount))

    def evaluate(values: Sequence[float]) -> tuple[bool, float] | None:
        if len(values) < need:
            return None
        window = values[-need:]
        if agg is None:
            now, before = window[-1], window[0]
        else:
            now, before = agg(window[prior:]), agg(window[:prior])
        change = now - before
        if relative:
            if before == 0:
                return None
            change /= abs(before)
        return passes(change), now

    return Condition(spec.name, need, evaluate)


def _zscore(spec: ZScoreFilter) -> Condition:
    size = spec.window_size
    need = size + 1
    passes = _direction(spec.change_dir, float(spec.threshold))

    def evaluate(values: Sequence[float]) -> tuple[bool, float] | None:
        if len(values) < need:
            return None
        window = values[-need:-1]
        latest = values[-1]
        mean = math.fsum(window) / size
        variance = math.fsum((v - mean) ** 2 for v in window) / size
        if variance <= 0.0:
            return None
        return passes((latest - mean) / math.sqrt(variance)), latest

    return Condition(spec.name, need, evaluate)


def compile_condition(spec: ThresholdFilter | ChangeFilter | ZScoreFilter) -> Condition:
    """The condition of one SDK metric filter."""
    if isinstance(spec, ThresholdFilter):
        return _threshold(spec)
    if isinstance(spec, ChangeFilter):
        return _change(spec)
    return _zscore(spec)


def state_matches(states: frozenset[RunState], state: RunState) -> bool:
    """Whether entering ``state`` triggers: W&B's FAILED stands for failed and crashed."""
    if state in states:
        return True
    return state is RunState.CRASHED and RunState.FAILED in states


class WatchedRule(Protocol):
    """What the fold needs of one run automation (app.core.run_pipeline.RunRule)."""

    @property
    def id(self) -> str:
        """The automation id."""
        ...

    @property
    def condition(self) -> Condition | None:
        """The metric condition (None for RUN_STATE)."""
        ...

    @property
    def cooldown(self) -> float | None:
        """Seconds between two firings on one run (None: no cooldown)."""
        ...


@dataclass(slots=True)
class Firing:
    """One automation firing on one record of a run."""

    automation_id: str
    metric: str | None = None
    value: float | None = None
    step: int | None = None


@dataclass(slots=True)
class Verdict:
    """Why one automation did or did not fire on one record (dry runs and ``evaluate``).

    Only a fold given a ``trace`` list writes these; the worker passes none.
    """

    automation_id: str
    fired: bool
    reason: str | None = None
    metric: str | None = None
    # The condition's value (latest, aggregate or current window; None: undefined).
    value: float | None = None
    # The values the condition read, oldest first (metric automations).
    window: list[float] | None = None
    holds: bool | None = None


@dataclass(slots=True)
class RunMemory:
    """The state one run keeps between its records (a value of the run-state table)."""

    # Offset of the last record folded (a replayed record is at or below it).
    offset: int = -1
    state: str | None = None
    # occurred_at (epoch seconds) when the run entered a terminal state.
    ended_at: float | None = None
    # metric -> its latest values (newest last), only as many as automations need.
    windows: dict[str, list[float]] = field(default_factory=dict)
    # metric -> the step of its latest value.
    steps: dict[str, int] = field(default_factory=dict)
    # Automations whose condition held at the latest value they saw.
    active: set[str] = field(default_factory=set)
    # automation id -> occurred_at (epoch seconds) of its last firing (rules with a cooldown).
    fired_at: dict[str, float] = field(default_factory=dict)
    # [offset, automation id, metric, value, step] of recent firings, oldest first.
    log: list[list[Any]] = field(default_factory=list)
    # The partition the memory is stored in (set by the worker's store; -1: none).
    partition: int = -1

    def to_bytes(self) -> bytes:
        """The table value (JSON)."""
        return dumps(
            {
                "o": self.offset,
                "s": self.state,
                "e": self.ended_at,
                "w": self.windows,
                "t": self.steps,
                "a": sorted(self.active),
                "f": self.fired_at,
                "l": self.log,
                "p": self.partition,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> RunMemory:
        """Read a table value written by ``to_bytes``."""
        obj = loads(raw)
        return cls(
            offset=obj["o"],
            state=obj["s"],
            ended_at=obj["e"],
            windows=obj["w"],
            steps=obj["t"],
            active=set(obj["a"]),
            fired_at=obj["f"],
            log=obj["l"],
            partition=obj.get("p", -1),
        )

    def replayed(self, offset: int) -> list[Firing]:
        """The firings the record at ``offset`` made when it was folded."""
        return [
            Firing(entry[1], entry[2], entry[3], entry[4])
            for entry in self.log
            if entry[0] == offset
        ]

    def _remember(self, offset: int, firing: Firing) -> None:
        log = self.log
        log.append([offset, firing.automation_id, firing.metric, firing.value, firing.step])
        if len(log) > FIRING_LOG_SIZE:
            del log[: len(log) - FIRING_LOG_SIZE]


def _cooling(memory: RunMemory, rule: WatchedRule, occurred: float) -> bool:
    """Whether the rule fired on this run less than its cooldown ago."""
    cooldown = rule.cooldown
    if cooldown is None:
        return False
    last = memory.fired_at.get(rule.id)
    return last is not None and occurred - last < cooldown


def _fire(memory: RunMemory, rule: WatchedRule, occurred: float, out: list[Firing]) -> Firing:
    if rule.cooldown is not None:
        # Only a cooldown reads it: other rules keep the run's value small.
        memory.fired_at[rule.id] = occurred
    firing = Firing(rule.id)
    out.append(firing)
    return firing


def _why_not(memory: RunMemory, rule: WatchedRule, was_active: bool, occurred: float) -> str:
    """Why a condition that holds fired nothing (read after ``_edge`` decided)."""
    if was_active:
        return "the condition already held at the previous value: it fires on the edge only"
    last = memory.fired_at.get(rule.id)
    return f"inside the cooldown of {rule.cooldown:g} s (fired {occurred - (last or 0):g} s ago)"


def _edge(
    memory: RunMemory, rule: WatchedRule, holds: bool, occurred: float, out: list[Firing]
) -> Firing | None:
    """Record the rule's new truth; a Firing when it became true outside its cooldown."""
    active = memory.active
    rid = rule.id
    if not holds:
        active.discard(rid)
        return None
    if rid in active:
        return None
    # Becoming true inside the cooldown fires nothing, and staying true after it
    # does not either: only the next crossing does.
    active.add(rid)
    if _cooling(memory, rule, occurred):
        return None
    return _fire(memory, rule, occurred, out)


def fold_metrics(
    memory: RunMemory,
    offset: int,
    step: int,
    metrics: dict[str, float],
    rules_by_metric: Mapping[str, Sequence[WatchedRule]],
    need: Mapping[str, int],
    occurred: float,
    run_matches: Callable[[WatchedRule], bool],
    trace: list[Verdict] | None = None,
) -> list[Firing]:
    """Fold one RUN_METRIC record into ``memory``; returns the firings on its edge.

    ``rules_by_metric``/``need``: the automations in the run's scope by metric, and the
    values each metric must keep. A value whose step is not after the metric's last
    one (a repeat or out of order) is ignored, as W&B ignores earlier steps. ``trace``,
    when given, gets a Verdict per automation looked at (the worker passes none).
    """
    out: list[Firing] = []
    windows = memory.windows
    steps = memory.steps
    for name, value in metrics.items():
        rules = rules_by_metric.get(name)
        if not rules:
            continue
        if step <= steps.get(name, -1):
            if trace is not None:
                reason = (
                    f"step {step} is not after step {steps[name]}, the last of metric "
                    f"'{name}': the value is ignored"
                )
                trace.extend(Verdict(rule.id, False, reason, name) for rule in rules)
            continue
        steps[name] = step
        window = windows.get(name)
        if window is None:
            window = windows[name] = []
        window.append(value)
        keep = need[name]
        if len(window) > keep:
            del window[: len(window) - keep]
        for rule in rules:
            condition = rule.condition
            assert condition is not None
            matches = run_matches(rule)
            result = condition.evaluate(window) if matches else None
            was_active = trace is not None and rule.id in memory.active
            firing = _edge(memory, rule, result is not None and result[0], occurred, out)
            if firing is not None and result is not None:
                firing.metric, firing.value, firing.step = name, result[1], step
            if trace is not None:
                trace.append(
                    _metric_verdict(
                        memory, rule, name, window, matches, result, firing, was_active, occurred
                    )
                )
    memory.offset = offset
    for firing in out:
        memory._remember(offset, firing)
    return out


def _metric_verdict(
    memory: RunMemory,
    rule: WatchedRule,
    name: str,
    window: list[float],
    matches: bool,
    result: tuple[bool, float] | None,
    firing: Firing | None,
    was_active: bool,
    occurred: float,
) -> Verdict:
    condition = rule.condition
    assert condition is not None
    read = window[-condition.need :]
    if not matches:
        return Verdict(rule.id, False, "the run filter does not match this run", name, None, read)
    if result is None:
        if len(window) < condition.need:
            reason = (
                f"undefined: metric '{name}' has {len(window)} of the {condition.need} "
                "values the condition reads"
            )
        else:
            reason = "undefined at these values (a zero standard deviation or prior aggregate)"
        return Verdict(rule.id, False, reason, name, None, read)
    holds, value = result
    if firing is not None:
        return Verdict(rule.id, True, None, name, value, read, True)
    if not holds:
        return Verdict(
            rule.id, False, f"the condition is false at {value:g}", name, value, read, False
        )
    reason = _why_not(memory, rule, was_active, occurred)
    return Verdict(rule.id, False, reason, name, value, read, True)


def _state_verdict(
    memory: RunMemory,
    rule: WatchedRule,
    states: frozenset[RunState],
    state: RunState,
    entered: bool,
    matches: bool,
    fired: bool,
    occurred: float,
) -> Verdict:
    if fired:
        return Verdict(rule.id, True)
    if not entered:
        reason = f"the run is already {state.value}: a repeated state enters nothing"
    elif not state_matches(states, state):
        wanted = ", ".join(sorted(s.value for s in states))
        reason = f"state {state.value} is not one of the automation's states ({wanted})"
    elif not matches:
        reason = "the run filter does not match this run"
    else:
        reason = _why_not(memory, rule, False, occurred)
    return Verdict(rule.id, False, reason)


def fold_state(
    memory: RunMemory,
    offset: int,
    state: RunState,
    rules: Sequence[tuple[WatchedRule, frozenset[RunState]]],
    occurred: float,
    run_matches: Callable[[WatchedRule], bool],
    trace: list[Verdict] | None = None,
) -> list[Firing]:
    """Fold one RUN_STATE record: rules whose states hold the new state fire on entering it.

    ``trace``, when given, gets a Verdict per automation (the worker passes none).
    """
    out: list[Firing] = []
    # Edge: a record repeating the run's current state enters nothing.
    entered = memory.state != state.value
    memory.state = state.value
    memory.ended_at = occurred if state in TERMINAL_STATES else None
    if entered or trace is not None:
        for rule, states in rules:
            fired = False
            matches = entered and state_matches(states, state) and run_matches(rule)
            if matches and not _cooling(memory, rule, occurred):
                _fire(memory, rule, occurred, out)
                fired = True
            if trace is not None:
                trace.append(
                    _state_verdict(
                        memory, rule, states, state, entered, run_matches(rule), fired, occurred
                    )
                )
    memory.offset = offset
    for firing in out:
        memory._remember(offset, firing)
    return out
