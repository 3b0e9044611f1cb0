"""app.core.run_windows: window aggregates, change and z-score conditions, edge firing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from app.contract.runs import ChangeFilter, RunState, ThresholdFilter, ZScoreFilter
from app.core.run_windows import (
    FIRING_LOG_SIZE,
    Condition,
    RunMemory,
    compile_condition,
    fold_metrics,
    fold_state,
    state_matches,
)


@dataclass(frozen=True)
class Rule:
    """A WatchedRule for the fold."""

    id: str
    condition: Condition | None
    cooldown: float | None = None


def threshold(**fields: Any) -> Condition:
    """A compiled threshold_filter on `loss`."""
    return compile_condition(ThresholdFilter.model_validate({"name": "loss", **fields}))


def change(**fields: Any) -> Condition:
    """A compiled change_filter on `loss`."""
    return compile_condition(ChangeFilter.model_validate({"name": "loss", **fields}))


def zscore(**fields: Any) -> Condition:
    """A compiled zscore_filter on `loss`."""
    return compile_condition(ZScoreFilter.model_validate({"name": "loss", **fields}))


def truths(rule: Rule, values: list[float], cooldown_step: float = 1.0) -> list[int]:
    """The steps at which the rule fired over a series of `loss` values."""
    memory = RunMemory()
    assert rule.condition is not None
    need = {"loss": rule.condition.need}
    fired: list[int] = []
    for step, value in enumerate(values):
        out = fold_metrics(
            memory,
            step,
            step,
            {"loss": value},
            {"loss": (rule,)},
            need,
            step * cooldown_step,
            lambda r: True,
        )
        fired.extend(step for _ in out)
    return fired


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [
        ("$gt", 2.0, False), ("$gt", 2.1, True), ("$gte", 2.0, True), ("$lt", 2.0, False),
        ("$lte", 2.0, True), ("$eq", 2.0, True), ("$eq", 2.1, False), ("$ne", 2.0, False),
        ("$ne", 1.0, True),
    ],
)  # fmt: skip
def test_threshold_operators_on_the_latest_value(op: str, value: float, holds: bool) -> None:
    """agg_op null compares the latest value with every W&B operator, eq and ne included."""
    result = threshold(cmp_op=op, threshold=2.0).evaluate([5.0, value])
    assert result == (holds, value)


@pytest.mark.parametrize(("agg", "expected"), [("AVERAGE", 2.0), ("MIN", 1.0), ("MAX", 3.0)])
def test_threshold_aggregates_over_the_last_window(agg: str, expected: float) -> None:
    """avg/min/max read the last window_size values only; fewer values are undefined."""
    condition = threshold(agg_op=agg, window_size=3, cmp_op="$gte", threshold=expected)
    assert condition.need == 3
    assert condition.evaluate([100.0, 1.0]) is None
    assert condition.evaluate([100.0, 1.0, 2.0, 3.0]) == (True, expected)


def test_change_absolute_and_relative_against_the_prior_window() -> None:
    """Current window avg vs the non-overlapping prior window, absolute or relative."""
    absolute = change(
        agg_op="AVERAGE",
        current_window_size=2,
        prior_window_size=3,
        change_amount=2,
        change_type="ABSOLUTE",
        change_dir="INCREASE",
    )
    assert absolute.need == 5
    # prior [1, 1, 1] avg 1, current [3, 3] avg 3: +2
    assert absolute.evaluate([9.0, 1.0, 1.0, 1.0, 3.0, 3.0]) == (True, 3.0)
    assert absolute.evaluate([1.0, 1.0, 1.0, 2.0, 3.0]) == (False, 2.5)
    relative = change(change_amount=0.5, change_type="RELATIVE", change_dir="DECREASE")
    assert relative.need == 2  # agg_op null: the latest against the one before
    assert relative.evaluate([4.0, 2.0]) == (True, 2.0)
    assert relative.evaluate([4.0, 2.1]) == (False, 2.1)
    assert relative.evaluate([0.0, 2.0]) is None  # relative to 0: undefined


def test_change_any_direction_and_prior_defaulting_to_current() -> None:
    """ANY takes either sign; a missing prior_window_size is the current window size."""
    condition = change(
        agg_op="MAX",
        current_window_size=2,
        change_amount=1,
        change_type="absolute",
        change_dir="any",
    )
    assert condition.need == 4
    assert condition.evaluate([5.0, 5.0, 3.0, 4.0]) == (True, 4.0)
    assert condition.evaluate([5.0, 5.0, 4.5, 4.5]) == (False, 4.5)


def test_zscore_of_the_latest_against_the_window_before_it() -> None:
    """z = (latest - mean) / std over the window_size previous values; std 0 is undefined."""
    up = zscore(window_size=4, threshold=2, change_dir="INCREASE")
    assert up.need == 5
    window = [1.0, 3.0, 1.0, 3.0]  # mean 2, std 1
    assert up.evaluate([*window, 4.0]) == (True, 4.0)
    assert up.evaluate([*window, 3.9]) == (False, 3.9)
    assert up.evaluate([*window, 0.0]) == (False, 0.0)
    down = zscore(window_size=4, threshold=2, change_dir="DECREASE")
    assert down.evaluate([*window, 0.0]) == (True, 0.0)
    both = zscore(window_size=4, threshold=2)
    assert both.evaluate([*window, 0.0]) == (True, 0.0)
    assert both.evaluate([2.0, 2.0, 2.0, 2.0, 9.0]) is None


def test_fires_on_the_edge_and_again_on_each_new_crossing() -> None:
    """Fires when the condition becomes true, not while it stays true; re-crossing fires."""
    rule = Rule("low", threshold(cmp_op="$lt", threshold=1.0))
    assert truths(rule, [2, 0.5, 0.4, 0.3, 2, 2, 0.1, 0.2, 3, 0.5]) == [1, 6, 9]


def test_cooldown_suppresses_crossings_inside_it() -> None:
    """Within the cooldown a crossing does not fire, and staying true after it does not."""
    rule = Rule("low", threshold(cmp_op="$lt", threshold=1.0), cooldown=5.0)
    # Crossings at 1 s (fires), 3 s and 5 s (inside 5 s of 1 s), still true at 6 s (past
    # the cooldown, but no new crossing), and at 8 s (outside it: fires).
    values = [2, 0.5, 2, 0.5, 2, 0.5, 0.5, 2, 0.5]
    assert truths(rule, values) == [1, 8]


def test_repeated_or_earlier_steps_are_ignored() -> None:
    """A value whose step is not after the metric's last step does not enter the window."""
    rule = Rule("high", threshold(cmp_op="$gt", threshold=1.0))
    memory = RunMemory()
    args: Any = ({"loss": (rule,)}, {"loss": 1}, 0.0, lambda r: True)
    assert fold_metrics(memory, 0, 5, {"loss": 0.0}, *args) == []
    assert fold_metrics(memory, 1, 5, {"loss": 9.0}, *args) == []
    assert fold_metrics(memory, 2, 4, {"loss": 9.0}, *args) == []
    assert memory.windows == {"loss": [0.0]}
    assert len(fold_metrics(memory, 3, 6, {"loss": 9.0}, *args)) == 1


def test_windows_keep_only_what_the_widest_automation_needs() -> None:
    """Memory per metric is bounded by the largest `need`; unwatched metrics are not kept."""
    wide = Rule("wide", threshold(agg_op="AVERAGE", window_size=4, cmp_op="$gt", threshold=99))
    narrow = Rule("narrow", threshold(cmp_op="$gt", threshold=99))
    memory = RunMemory()
    for step in range(50):
        fold_metrics(
            memory,
            step,
            step,
            {"loss": float(step), "acc": 1.0},
            {"loss": (narrow, wide)},
            {"loss": 4},
            float(step),
            lambda r: True,
        )
    assert memory.windows == {"loss": [46.0, 47.0, 48.0, 49.0]}


def test_a_run_filter_that_stops_matching_resets_the_edge() -> None:
    """A record the run filter refuses counts as not true: the next match fires again."""
    rule = Rule("low", threshold(cmp_op="$lt", threshold=1.0))
    memory = RunMemory()
    matches = [True, False, True]
    fired = []
    for step, ok in enumerate(matches):

        def run_matches(rule: Any, ok: bool = ok) -> bool:
            return ok

        out = fold_metrics(
            memory,
            step,
            step,
            {"loss": 0.0},
            {"loss": (rule,)},
            {"loss": 1},
            0.0,
            run_matches,
        )
        fired.append(len(out))
    assert fired == [1, 0, 1]


def test_state_fires_on_entering_a_state_only() -> None:
    """RUN_STATE fires when the run enters a listed state, not on a repeat of it."""
    rule = Rule("done", None)
    states = frozenset({RunState.FINISHED, RunState.FAILED})
    memory = RunMemory()
    sequence = ["running", "finished", "finished", "running", "crashed", "killed"]
    fired = [
        len(fold_state(memory, i, RunState(s), [(rule, states)], float(i), lambda r: True))
        for i, s in enumerate(sequence)
    ]
    assert fired == [0, 1, 0, 0, 1, 0]
    assert memory.ended_at == 5.0
    assert memory.state == "killed"


def test_failed_covers_crashed_and_killed_only_when_listed() -> None:
    """W&B's FAILED stands for failed and crashed; killed fires only when listed."""
    assert state_matches(frozenset({RunState.FAILED}), RunState.CRASHED)
    assert not state_matches(frozenset({RunState.FAILED}), RunState.KILLED)
    assert state_matches(frozenset({RunState.KILLED}), RunState.KILLED)
    assert not state_matches(frozenset({RunState.CRASHED}), RunState.FAILED)


def test_memory_round_trips_and_replays_its_firings_by_offset() -> None:
    """to_bytes/from_bytes keep everything; replayed(offset) returns that record's firings."""
    rule = Rule("low", threshold(cmp_op="$lt", threshold=1.0))
    memory = RunMemory()
    for step, value in enumerate([2.0, 0.5, 2.0, 0.25]):
        fold_metrics(
            memory, 100 + step, step, {"loss": value}, {"loss": (rule,)}, {"loss": 1}, 0.0,
            lambda r: True,
        )  # fmt: skip
    copy = RunMemory.from_bytes(memory.to_bytes())
    assert copy == memory
    assert [(f.automation_id, f.value, f.step) for f in copy.replayed(103)] == [("low", 0.25, 3)]
    assert copy.replayed(102) == []


def test_firing_log_is_bounded() -> None:
    """The replay log keeps the last FIRING_LOG_SIZE firings of a run."""
    rule = Rule("low", threshold(cmp_op="$lt", threshold=1.0))
    memory = RunMemory()
    for step in range(4 * FIRING_LOG_SIZE):
        value = 0.0 if step % 2 else 2.0
        fold_metrics(
            memory, step, step, {"loss": value}, {"loss": (rule,)}, {"loss": 1}, 0.0,
            lambda r: True,
        )  # fmt: skip
    assert len(memory.log) == FIRING_LOG_SIZE
    assert memory.log[-1][0] == 4 * FIRING_LOG_SIZE - 1
