"""Why run automations fire or not (app.core.run_explain over the run agent's pipeline)."""

from __future__ import annotations

from typing import Any

import pytest

from app.contract.automations import (
    DEFAULT_NOTIFICATION_TITLE,
    DEFAULT_RUN_METRIC_PAYLOAD,
    DEFAULT_RUN_STATE_TITLE,
    DEFAULT_WEBHOOK_PAYLOAD,
    parse_automation,
    run_action_defaults,
)
from app.contract.dead_letters import DeadLetter
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_explain import AutomationVerdict, RunExplainer, is_run_record
from app.core.run_pipeline import (
    MemoryRunStore,
    RunPipeline,
    RunResult,
    RunRules,
    run_variables,
)
from app.core.run_windows import Firing, Verdict
from app.lang.templating import VARIABLES, compile_template
from app.serialization import dumps, loads
from tests.factories import (
    ACTION_TOPICS,
    AVG_LOSS_FILTER,
    NOW,
    automation_dict,
    event_bytes,
    run_automation_dict,
    run_metric_bytes,
    run_state_bytes,
    run_stream,
    run_stream_automations,
)

AVG_LOSS = AVG_LOSS_FILTER
FINISHED = {"run_state_filter": {"states": ["FINISHED"]}}


def explainer(*automations: dict[str, Any]) -> RunExplainer:
    """A RunExplainer over the run agent's RunPipeline, as evaluate builds it."""
    parsed = [parse_automation(a) for a in automations]
    index = AutomationIndex(parsed)
    runs = RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20, lambda: NOW), RunRules(list(index)))
    return RunExplainer(runs, parsed)


class Feeder:
    """Feeds records at running offsets and returns the one automation's verdict."""

    def __init__(self, *automations: dict[str, Any]) -> None:
        self.explainer = explainer(*automations)
        self.offset = 0

    def verdicts(self, raw: bytes) -> dict[str, AutomationVerdict]:
        """Every automation's verdict on the next record."""
        self.offset += 1
        explained = self.explainer.feed(raw, SourceInfo("run-events", 0, self.offset))
        return {v.automation_id: v for v in explained.verdicts}


def test_threshold_verdicts_say_undefined_false_fired_and_edge_with_values_and_window() -> None:
    """Each record's verdict names the condition's value and the window it read."""
    feeder = Feeder(run_automation_dict(AVG_LOSS))
    seen = [
        feeder.verdicts(run_metric_bytes(step, {"loss": value}))["loss-watch"]
        for step, value in enumerate([0.9, 0.7, 0.2, 0.1, 0.9])
    ]
    assert [v.fired for v in seen] == [False, False, True, False, False]
    assert seen[0].reasons == ["undefined: metric 'loss' has 1 of the 2 values the condition reads"]
    assert seen[0].window == [0.9]
    assert seen[1].reasons == ["the condition is false at 0.8"]
    assert seen[1].value == pytest.approx(0.8)
    assert seen[1].window == [0.9, 0.7]
    assert seen[2].reasons == []
    assert seen[2].value == pytest.approx(0.45)
    assert seen[2].window == [0.7, 0.2]
    assert seen[2].outbound is not None
    assert seen[2].outbound.topic == ACTION_TOPICS["webhook"]
    assert "edge" in seen[3].reasons[0]
    assert seen[4].reasons == ["the condition is false at 0.5"]


def test_cooldown_ignored_steps_and_run_filter_are_explained() -> None:
    """A crossing inside the cooldown, a step not after the last, a run filter that fails."""
    run_filter = dumps({"user": "bob"}).decode()
    feeder = Feeder(
        run_automation_dict(
            {"run_metric_filter": {"threshold_filter": {
                "name": "loss", "cmp_op": "$lt", "threshold": 0.5}}},
            cooldown_seconds=60,
        ),
        run_automation_dict({**AVG_LOSS, "run_filter": run_filter}, id="bob-only"),
    )  # fmt: skip
    assert feeder.verdicts(run_metric_bytes(0, {"loss": 0.1}))["loss-watch"].fired
    feeder.verdicts(run_metric_bytes(1, {"loss": 0.9}))
    cooling = feeder.verdicts(run_metric_bytes(2, {"loss": 0.1}))
    assert cooling["loss-watch"].reasons[0].startswith("inside the cooldown of 60 s")
    assert cooling["bob-only"].reasons[0] == "the run filter does not match this run"
    assert cooling["bob-only"].reasons[1:] == [
        'filter.user: user is "alice", which fails $eq "bob"'
    ]
    again = feeder.verdicts(run_metric_bytes(2, {"loss": 0.1}))
    assert again["loss-watch"].reasons == [
        "step 2 is not after step 2, the last of metric 'loss': the value is ignored"
    ]


def test_automations_the_fold_skips_get_scope_type_and_metric_reasons() -> None:
    """Scope, record type, a metric the record lacks and a disabled automation are named."""
    entity_scope = run_automation_dict(AVG_LOSS, id="other-project")
    entity_scope["scope"] = {"type": "project", "entity": "acme", "project": "cifar"}
    feeder = Feeder(
        run_automation_dict(AVG_LOSS),
        entity_scope,
        run_automation_dict(FINISHED, event="RUN_STATE", id="done"),
        run_automation_dict(AVG_LOSS, id="off", enabled=False),
    )
    verdicts = feeder.verdicts(run_metric_bytes(0, {"acc": 0.5}))
    assert verdicts["loss-watch"].reasons == ["the record has no metric 'loss' (it logs acc)"]
    assert verdicts["other-project"].reasons[0] == (
        "scope project is 'cifar' but the record's project is 'mnist'"
    )
    assert verdicts["done"].reasons == [
        "a RUN_METRIC record; RUN_STATE automations watch RUN_STATE records"
    ]
    assert verdicts["off"].reasons[0] == "automation is disabled"
    state = feeder.verdicts(run_state_bytes("finished"))
    assert state["done"].fired
    assert state["loss-watch"].reasons == [
        "a RUN_STATE record; RUN_METRIC automations watch RUN_METRIC records"
    ]


def test_state_verdicts_name_repeats_and_unlisted_states() -> None:
    """A repeated state enters nothing; a state the automation does not list says so."""
    feeder = Feeder(run_automation_dict(FINISHED, event="RUN_STATE", id="done"))
    first = feeder.verdicts(run_state_bytes("running"))["done"]
    assert first.reasons == ["state running is not one of the automation's states (finished)"]
    assert feeder.verdicts(run_state_bytes("finished"))["done"].fired
    repeated = feeder.verdicts(run_state_bytes("finished"))["done"]
    assert repeated.reasons == ["the run is already finished: a repeated state enters nothing"]


def test_invalid_records_carry_the_dead_letters_reason() -> None:
    """An invalid record is explained by the very reason and code of its dead letter."""
    bad = run_metric_bytes(1, {"loss": "low"})
    explained = explainer(run_automation_dict(AVG_LOSS)).feed(bad, SourceInfo("run-events"))
    assert explained.invalid
    letter = explained.result.dead_letter
    assert letter is not None
    record = DeadLetter.model_validate_json(letter)
    assert explained.as_json()["reason"] == record.reason
    assert explained.as_json()["error_code"] == record.error_code == "invalid_field"


def test_the_trace_changes_no_firing_and_no_memory() -> None:
    """Folding with a trace fires exactly what the worker's fold fires, to the same state."""
    automations = run_stream_automations("acme")
    records = run_stream("acme", runs=6, steps=30)
    index = AutomationIndex(automations)
    pipelines = [
        RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20, lambda: NOW), RunRules(list(index)))
        for _ in range(2)
    ]
    stores = [MemoryRunStore(), MemoryRunStore()]
    traced: list[Verdict] = []
    fired = 0
    for offset, (key, value) in enumerate(records):
        source = SourceInfo("run-events", 0, offset, key)
        plain = pipelines[0].process(value, store=stores[0], source=source)
        trace: list[Verdict] = []
        with_trace = pipelines[1].process(value, store=stores[1], source=source, trace=trace)
        assert [o.value for o in plain.outbounds] == [o.value for o in with_trace.outbounds]
        assert sum(v.fired for v in trace) == len(with_trace.firings)
        fired += len(plain.firings)
        traced.extend(trace)
    assert fired > 10
    assert {p: m.to_bytes() for p, m in stores[0].data.items()} == {
        p: m.to_bytes() for p, m in stores[1].data.items()
    }
    assert {v.automation_id for v in traced} == {a.id for a in automations}


def test_is_run_record_reads_the_event_type() -> None:
    """Run records are told from events by their event_type only."""
    assert is_run_record(run_metric_bytes(1, {"loss": 1.0}))
    assert is_run_record(run_state_bytes("finished"))
    assert not is_run_record(event_bytes())
    assert not is_run_record(b'{"note": "RUN_METRIC"}')
    assert not is_run_record(b'"RUN_METRIC" not json')


# Variables that only speak of an artifact: a run job renders them empty.
ARTIFACT_ONLY = frozenset(
    {name for name in VARIABLES if name.startswith(("artifact_", "source_"))}
    | {"alias", "tag", "registry_name", "previous_version"}
)
METRIC_SPECS = {
    "RUN_METRIC": AVG_LOSS,
    "RUN_METRIC_CHANGE": {"run_metric_filter": {"change_filter": {
        "name": "loss", "change_amount": 0.1, "change_type": "ABSOLUTE", "change_dir": "ANY"}}},
    "RUN_METRIC_ZSCORE": {"run_metric_filter": {"zscore_filter": {
        "name": "loss", "window_size": 3, "threshold": 1, "change_dir": "ANY"}}},
    "RUN_STATE": FINISHED,
}  # fmt: skip
RECORDS = [run_metric_bytes(s, {"loss": v}) for s, v in enumerate([1.0, 2.0, 1.0, 2.0, 1.0, -5.0])]


@pytest.mark.parametrize("event", sorted(METRIC_SPECS))
@pytest.mark.parametrize("kind", ["webhook", "notification"])
def test_no_run_default_renders_an_empty_or_artifact_only_variable(event: str, kind: str) -> None:
    """Defaulted run payloads and titles name only run variables, each rendered non-empty."""
    action: dict[str, Any] = (
        {"type": "webhook", "payload": None}
        if kind == "webhook"
        else {"type": "notification", "channel": "ml", "url": None, "payload": None}
    )
    automation = run_automation_dict(METRIC_SPECS[event], event=event, action=action)
    parsed = parse_automation(automation)
    payload, title = run_action_defaults(parsed.event)  # type: ignore[arg-type]
    template = payload if kind == "webhook" else title
    assert getattr(parsed.action, "payload" if kind == "webhook" else "title") == template
    names = set(compile_template(template).variables)
    assert names
    assert not names & ARTIFACT_ONLY
    assert {"run_path", "event_type"} <= names
    records = [run_state_bytes("finished")] if event == "RUN_STATE" else RECORDS
    feeder = Feeder(automation)
    fired: list[tuple[RunResult, Firing]] = []
    for number, raw in enumerate(records):
        result = feeder.explainer.feed(raw, SourceInfo("run-events", 0, number)).result
        fired.extend((result, firing) for firing in result.firings)
    assert len(fired) == 1, "the records make the automation fire once"
    result, firing = fired[0]
    assert result.record is not None
    assert result.event_id is not None
    variables = run_variables(result.record, parsed.event, result.event_id, firing)  # type: ignore[arg-type]
    assert {name: variables[name] for name in names if variables[name] == ""} == {}
    job = loads(result.outbounds[0].value)
    if kind == "webhook":
        assert set(loads(job["action"]["payload"])) == names
    else:
        assert job["action"]["title"] == compile_template(title).render(variables)


def test_artifact_automations_and_given_payloads_keep_theirs() -> None:
    """Only a run automation that leaves them out gets the run defaults."""
    given = run_automation_dict(AVG_LOSS)
    assert parse_automation(given).action.payload == given["action"]["payload"]  # type: ignore[union-attr]
    artifact = parse_automation(
        {**automation_dict(), "action": {"type": "webhook", "url": "https://ci.example.com/h"}}
    )
    assert artifact.action.payload == DEFAULT_WEBHOOK_PAYLOAD  # type: ignore[union-attr]
    stored_before = run_automation_dict(AVG_LOSS, action={"payload": DEFAULT_WEBHOOK_PAYLOAD})
    assert parse_automation(stored_before).action.payload == DEFAULT_RUN_METRIC_PAYLOAD  # type: ignore[union-attr]
    titled = run_automation_dict(
        FINISHED, event="RUN_STATE",
        action={"type": "notification", "channel": "ml", "url": None, "payload": None,
                "title": DEFAULT_NOTIFICATION_TITLE},
    )  # fmt: skip
    assert parse_automation(titled).action.title == DEFAULT_RUN_STATE_TITLE  # type: ignore[union-attr]
