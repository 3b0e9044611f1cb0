"""Run automations built with the real W&B SDK (wandb.automations), evaluated over runs.

Each automation's filter is the JSON the SDK serializes (``OnRunMetric``/``OnRunState``
``.model_dump(by_alias=True)``), taken as it is. Generated runs go through
``RunPipeline``; the firings are computed again here, independently: each step's
condition from the run's whole history with ``statistics``, the edge by comparing with
the previous step's truth.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import wandb._filters
import wandb.automations
import wandb.automations.scopes

from app.contract.automations import parse_automation
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules
from app.serialization import dumps, loads
from tests.factories import ACTION_TOPICS, NOW

# The SDK's pydantic models and operator overloads are typed for its own use; the test
# drives them as a user script would, so they are Any here.
_sdk: Any = wandb.automations
_scopes: Any = wandb.automations.scopes
_filters: Any = wandb._filters
OnRunMetric, OnRunState, RunEvent = _sdk.OnRunMetric, _sdk.OnRunState, _sdk.RunEvent
ProjectScope, TeamScope, FilterableField = (
    _scopes.ProjectScope,
    _scopes.TeamScope,
    _filters.FilterableField,
)

# The SDK's own deprecated `metric_filter` field warns when its models validate.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROJECT = ProjectScope(id="UHJvamVjdDox", name="mnist")
TEAM = TeamScope(id="RW50aXR5OjE=", name="acme")
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

Reference = Callable[[list[float]], bool]


def sdk_automation(
    automation_id: str, event: Any, scope: dict[str, str], **extra: Any
) -> dict[str, Any]:
    """A Hookstream automation whose event type and filter are the SDK's JSON, unchanged."""
    dumped = event.model_dump(by_alias=True, mode="json")
    return {
        "id": automation_id,
        "name": automation_id,
        "event": dumped["event_type"],
        "scope": scope,
        "filter": loads(dumped["filter"]),
        "action": {
            "type": "webhook",
            "url": "https://hooks.example.com/run",
            "payload": '{"m": "${metric_name}", "v": "${metric_value}", "s": "${step}"}',
        },
        **extra,
    }


PROJECT_SCOPE = {"type": "project", "entity": "acme", "project": "mnist"}
ENTITY_SCOPE = {"type": "entity", "entity": "acme"}


def _avg_below(window: int, limit: float) -> Reference:
    return lambda h: len(h) >= window and statistics.fmean(h[-window:]) < limit


def _max_above(window: int, limit: float) -> Reference:
    return lambda h: len(h) >= window and max(h[-window:]) > limit


def _latest_at_least(limit: float) -> Reference:
    return lambda h: h[-1] >= limit


def _avg_drops_by_fraction(window: int, fraction: float) -> Reference:
    def holds(h: list[float]) -> bool:
        if len(h) < 2 * window:
            return False
        now = statistics.fmean(h[-window:])
        before = statistics.fmean(h[-2 * window : -window])
        return before != 0 and (before - now) / abs(before) >= fraction

    return holds


def _max_rises_by(window: int, amount: float) -> Reference:
    def holds(h: list[float]) -> bool:
        if len(h) < 2 * window:
            return False
        return max(h[-window:]) - max(h[-2 * window : -window]) >= amount

    return holds


def _zscore(window: int, limit: float, absolute: bool) -> Reference:
    def holds(h: list[float]) -> bool:
        if len(h) < window + 1:
            return False
        past = h[-window - 1 : -1]
        spread = statistics.pstdev(past)
        if spread == 0:
            return False
        z = (h[-1] - statistics.fmean(past)) / spread
        return abs(z) >= limit if absolute else z >= limit

    return holds


def name_has_exp(run: dict[str, Any]) -> bool:
    """The run filter RunEvent.name.contains('exp')."""
    return "exp" in run["name"]


def tagged_or_fast(run: dict[str, Any]) -> bool:
    """The run filter tags contains 'x' or config.lr > 0.1."""
    return any("x" in tag for tag in run["tags"]) or run["config"]["lr"] > 0.1


def every_run(run: dict[str, Any]) -> bool:
    """No run filter."""
    return True


loss, acc = RunEvent.metric("loss"), RunEvent.metric("acc")
tags, lr = FilterableField("tags"), FilterableField("config.lr")

# (automation, metric, reference condition, run filter, cooldown seconds)
METRIC_CASES: list[tuple[dict[str, Any], str, Reference, Callable[[dict[str, Any]], bool]]] = [
    (
        sdk_automation("avg-loss-low", OnRunMetric(scope=PROJECT, filter=loss.avg(5) < 0.5),
                       PROJECT_SCOPE),
        "loss", _avg_below(5, 0.5), every_run,
    ),
    (
        sdk_automation("max-loss-high", OnRunMetric(
            scope=TEAM, filter=RunEvent.name.contains("exp") & (loss.max(3) > 0.9)), ENTITY_SCOPE),
        "loss", _max_above(3, 0.9), name_has_exp,
    ),
    (
        sdk_automation("acc-good", OnRunMetric(scope=PROJECT, filter=acc >= 0.8), PROJECT_SCOPE),
        "acc", _latest_at_least(0.8), every_run,
    ),
    (
        sdk_automation("loss-drops", OnRunMetric(
            scope=PROJECT, filter=loss.avg(3).decreases_by(frac=0.2)), PROJECT_SCOPE),
        "loss", _avg_drops_by_fraction(3, 0.2), every_run,
    ),
    (
        sdk_automation("acc-jumps", OnRunMetric(
            scope=PROJECT, filter=(tags.contains("x") | (lr > 0.1)) & acc.max(2).increases_by(
                diff=0.15)), PROJECT_SCOPE),
        "acc", _max_rises_by(2, 0.15), tagged_or_fast,
    ),
    (
        sdk_automation("loss-spike", OnRunMetric(scope=PROJECT, filter=loss.zscore(8) > 1.5),
                       PROJECT_SCOPE),
        "loss", _zscore(8, 1.5, absolute=False), every_run,
    ),
    (
        sdk_automation("loss-strays", OnRunMetric(scope=TEAM, filter=abs(loss.zscore(6)) > 2),
                       ENTITY_SCOPE),
        "loss", _zscore(6, 2.0, absolute=True), every_run,
    ),
]  # fmt: skip

STATE_AUTOMATION = sdk_automation(
    "run-ended",
    OnRunState(scope=PROJECT, filter=RunEvent.state.in_(["finished", "failed"])),
    PROJECT_SCOPE,
)


def generated_runs(count: int, steps: int, seed: int) -> list[dict[str, Any]]:
    """Runs of random-walk metrics: loss every step, acc every other step."""
    rng = random.Random(seed)
    runs = []
    for n in range(count):
        run = {
            "id": f"run-{n}",
            "name": f"{'exp' if n % 2 else 'base'}-{n}",
            "user": "alice",
            "tags": ["x"] if n % 3 == 0 else ["y"],
            "config": {"lr": rng.choice([0.01, 0.5])},
            "state": "running",
        }
        loss_value, acc_value = 1.0, 0.5
        records = []
        for step in range(steps):
            loss_value = max(0.0, loss_value + rng.gauss(-0.02, 0.15))
            metrics = {"loss": round(loss_value, 4)}
            if step % 2 == 0:
                acc_value = min(1.0, max(0.0, acc_value + rng.gauss(0.01, 0.12)))
                metrics["acc"] = round(acc_value, 4)
            records.append(metrics)
        end = rng.choice(["finished", "failed", "crashed", "killed"])
        runs.append({"run": run, "steps": records, "end": end})
    return runs


def record(run: dict[str, Any], step: int, metrics: dict[str, float]) -> bytes:
    """The RUN_METRIC record of one step."""
    return dumps(
        {
            "event_type": "RUN_METRIC",
            "occurred_at": (START + timedelta(seconds=step)).isoformat(),
            "entity": "acme",
            "project": "mnist",
            "run": run,
            "step": step,
            "metrics": metrics,
        }
    )


def expected_firings(runs: list[dict[str, Any]]) -> set[tuple[str, str, int | str]]:
    """(automation id, run id, step or end state) of every firing, computed here."""
    out: set[tuple[str, str, int | str]] = set()
    for item in runs:
        run = item["run"]
        for automation, metric, holds, run_filter in METRIC_CASES:
            history: list[float] = []
            before = False
            for step, metrics in enumerate(item["steps"]):
                if metric not in metrics:
                    continue
                history.append(metrics[metric])
                now = run_filter(run) and holds(history)
                if now and not before:
                    out.add((automation["id"], run["id"], step))
                before = now
        # W&B's FAILED covers crashed; killed is not among the SDK's states.
        if item["end"] in ("finished", "failed", "crashed"):
            out.add(("run-ended", run["id"], item["end"]))
    return out


def test_sdk_filters_are_accepted_as_the_sdk_serializes_them() -> None:
    """Every SDK-built filter validates unchanged and keeps the SDK's event type."""
    kinds = {parse_automation(case[0]).event.value for case in METRIC_CASES}
    assert kinds == {"RUN_METRIC", "RUN_METRIC_CHANGE", "RUN_METRIC_ZSCORE"}
    state = parse_automation(STATE_AUTOMATION)
    assert state.event.value == "RUN_STATE"
    assert state.filter == {
        "run_filter": '{"$and":[]}',
        "run_state_filter": {"states": ["FAILED", "FINISHED"]},
    }


def test_automation_from_wandb_reads_the_sdks_run_automations() -> None:
    """A NewAutomation on a run event, as the SDK serializes it, reads through the SDK
    reader (app.contract.wandb_sdk) into a run automation with its scope and filter."""
    from app.contract.wandb_sdk import automation_from_wandb

    metric = OnRunMetric(scope=TEAM, filter=RunEvent.metric("loss").avg(5) < 0.1)
    state = OnRunState(scope=PROJECT, filter=RunEvent.state.eq("FINISHED"))
    read = [
        automation_from_wandb(
            _sdk.NewAutomation(name=name, event=event, action=_sdk.DoNothing()).model_dump(
                mode="json"
            ),
            id=name,
            entity="acme",
        )
        for name, event in (("metric", metric), ("state", state))
    ]
    assert [a.event.value for a in read] == ["RUN_METRIC", "RUN_STATE"]
    assert all(a.is_run_automation for a in read)
    assert read[0].scope.model_dump() == {"type": "entity", "entity": "acme"}
    assert read[0].filter is not None
    assert read[0].filter["run_metric_filter"]["threshold_filter"]["agg_op"] == "AVERAGE"
    assert read[1].scope.model_dump() == {"type": "project", "entity": "acme", "project": "mnist"}
    assert read[1].filter is not None
    assert read[1].filter["run_state_filter"]["states"] == ["FINISHED"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sdk_automations_fire_as_computed_independently(seed: int) -> None:
    """Over generated runs, the pipeline fires exactly the (automation, run, step) computed here."""
    automations = [parse_automation(case[0]) for case in METRIC_CASES]
    automations.append(parse_automation(STATE_AUTOMATION))
    index = AutomationIndex(automations)
    rules = RunRules([c for c in index])
    pipeline = RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20, lambda: NOW), rules)
    store = MemoryRunStore()
    runs = generated_runs(12, 120, seed)
    got: set[tuple[str, str, int | str]] = set()
    jobs = 0
    offset = 0
    for item in runs:
        run = item["run"]
        for step, metrics in enumerate(item["steps"]):
            result = pipeline.process(
                record(run, step, metrics), store=store, source=SourceInfo("run-events", 0, offset)
            )
            offset += 1
            assert result.dead_letter is None
            for firing in result.firings:
                assert firing.step == step
                got.add((firing.automation_id, run["id"], step))
            jobs += len(result.outbounds)
        end = dumps(
            {
                "event_type": "RUN_STATE",
                "occurred_at": START.isoformat(),
                "entity": "acme",
                "project": "mnist",
                "run": run,
                "state": item["end"],
            }
        )
        result = pipeline.process(end, store=store, source=SourceInfo("run-events", 0, offset))
        offset += 1
        got.update((f.automation_id, run["id"], item["end"]) for f in result.firings)
        jobs += len(result.outbounds)
    expected = expected_firings(runs)
    assert got == expected
    assert jobs == len(expected)
    # Every automation fired somewhere: the generated runs exercise each condition.
    assert {firing[0] for firing in expected} == {a.id for a in automations}
