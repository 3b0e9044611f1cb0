"""app.core.run_pipeline and app.contract.runs: run records, dead letters, jobs, replays."""

from __future__ import annotations

from typing import Any

import pytest

from app.contract.automations import parse_automation
from app.contract.dead_letters import DeadLetter
from app.contract.jobs import job_id, parse_action_job
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunResult, RunRules
from app.errors import InvalidAutomationError
from app.serialization import dumps, loads
from tests.factories import (
    ACTION_TOPICS,
    NOW,
    run_automation_dict,
    run_metric_bytes,
    run_metric_dict,
    run_state_bytes,
)

LOW_LOSS = {
    "run_metric_filter": {"threshold_filter": {"name": "loss", "cmp_op": "$lt", "threshold": 0.5}}
}
PATH = "acme/mnist/run-1"


class Rig:
    """A RunPipeline over a few automations, with a dict store and running offsets."""

    def __init__(self, *automations: dict[str, Any]) -> None:
        self.index = AutomationIndex([parse_automation(a) for a in automations])
        self.pipeline = RunPipeline(
            Pipeline(self.index, ACTION_TOPICS, 1 << 20, lambda: NOW), RunRules(list(self.index))
        )
        self.store = MemoryRunStore()
        self.offset = 0

    def feed(self, raw: bytes | None, offset: int | None = None) -> RunResult:
        """Process one record at the next offset (or the one given)."""
        if offset is None:
            offset, self.offset = self.offset, self.offset + 1
        source = SourceInfo("run-events", 2, offset, key=PATH.encode())
        return self.pipeline.process(raw, store=self.store, source=source)


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (run_metric_bytes(1, {"loss": "low"}), "invalid_field", "metric 'loss' is not a number"),
        (run_metric_bytes(1, {"loss": True}), "invalid_field", "metric 'loss' is not a number"),
        (run_metric_bytes(1, {"loss": {"a": 1}}), "invalid_field", "not a number"),
        (run_metric_bytes(1, {"loss": 1}).replace(b"1}", b"NaN}"), "not_json", "NaN"),
        (run_metric_bytes(1, {"loss": 1}).replace(b"1}", b"1e999}"), "not_json", "infinity"),
        (run_metric_bytes(1, {}), "invalid_field", "metrics"),
        (run_metric_bytes(-1, {"loss": 1}), "invalid_field", "step"),
        (dumps(run_metric_dict(1, {"loss": 1}, run={"id": None})), "missing_field", "run.id"),
        (dumps(run_metric_dict(1, {"loss": 1}, event_type="RUN_LOG")), "unknown_event_type",
         "RUN_LOG"),
        (run_state_bytes("zombie"), "invalid_field", "state"),
        (b"[1]", "not_object", "JSON object"),
        (run_metric_bytes(1, {"loss": 1}).replace(b'{"loss"', b'{"loss": 2, "loss"'),
         "invalid_field", "duplicate key 'loss'"),
        (run_metric_bytes(1, {"loss": 1}).replace(b"1}", b"123456789012345678901234567890}"),
         "invalid_field", "does not fit 64 bits"),
        (b"", "empty", "empty"),
        (None, "empty", "null"),
    ],
)  # fmt: skip
def test_invalid_records_become_dead_letters_with_a_reason(
    raw: bytes | None, code: str, reason: str
) -> None:
    """Non-numeric, NaN, infinite metrics and other bad records go to the dead letters."""
    result = Rig(run_automation_dict(LOW_LOSS)).feed(raw)
    assert result.record is None
    assert result.dead_letter is not None
    letter = DeadLetter.model_validate_json(result.dead_letter)
    assert letter.error_code == code
    assert reason in letter.reason
    assert letter.source_topic == "run-events"
    assert letter.original_value() == raw


def test_a_firing_renders_a_job_with_run_variables_and_a_deterministic_id() -> None:
    """The job carries the automation's event type, the record, and the run variables."""
    rig = Rig(run_automation_dict(LOW_LOSS))
    assert rig.feed(run_metric_bytes(0, {"loss": 0.9})).outbounds == []
    result = rig.feed(run_metric_bytes(1, {"loss": 0.25, "acc": 0.5}))
    (out,) = result.outbounds
    job = parse_action_job(out.value)
    assert job.event_type == "RUN_METRIC"
    assert job.event_id == f"{PATH}@2:1"
    assert job.job_id == job_id(f"{PATH}@2:1", "loss-watch", 1)
    assert job.event["metrics"] == {"loss": 0.25, "acc": 0.5}
    assert loads(job.action.payload) == {  # type: ignore[union-attr]
        "run": "bright-sun-1", "metric": "loss", "value": "0.25", "step": "1",
    }  # fmt: skip
    assert out.topic == ACTION_TOPICS["webhook"]
    assert out.key == b"loss-watch"


def test_a_replayed_record_repeats_its_job_id_and_folds_nothing() -> None:
    """At or below the memory's offset a record is a replay: same jobs, same ids, no refold."""
    rig = Rig(run_automation_dict(LOW_LOSS))
    rig.feed(run_metric_bytes(0, {"loss": 0.9}))
    first = rig.feed(run_metric_bytes(1, {"loss": 0.1}))
    rig.feed(run_metric_bytes(2, {"loss": 0.9}))
    before = rig.store.data[PATH].to_bytes()
    again = rig.feed(run_metric_bytes(1, {"loss": 0.1}), offset=1)
    assert again.replayed
    assert [o.value for o in again.outbounds] != []
    assert [parse_action_job(o.value).job_id for o in again.outbounds] == [
        parse_action_job(o.value).job_id for o in first.outbounds
    ]
    assert rig.feed(run_metric_bytes(2, {"loss": 0.9}), offset=2).outbounds == []
    assert rig.store.data[PATH].to_bytes() == before


def test_run_filter_on_name_user_tags_and_config() -> None:
    """run_filter sees display_name, user, tags and config.<path> of the record's run."""
    run_filter = dumps(
        {"$and": [
            {"display_name": {"$regex": "^bright"}}, {"user": "alice"},
            {"tags": {"$in": ["baseline"]}}, {"config.optimizer.name": "adam"},
        ]}
    ).decode()  # fmt: skip
    rig = Rig(run_automation_dict({**LOW_LOSS, "run_filter": run_filter}))
    assert len(rig.feed(run_metric_bytes(0, {"loss": 0.1})).outbounds) == 1
    other = Rig(run_automation_dict({**LOW_LOSS, "run_filter": run_filter}))
    refused = run_metric_bytes(0, {"loss": 0.1}, run={"config": {"optimizer": {"name": "sgd"}}})
    assert other.feed(refused).firings == []


def test_entity_scope_covers_every_project_and_project_scope_one() -> None:
    """An entity automation fires for any project of the entity; a project one for its own."""
    entity = run_automation_dict(LOW_LOSS, id="entity")
    entity["scope"] = {"type": "entity", "entity": "acme"}
    rig = Rig(entity, run_automation_dict(LOW_LOSS, id="project"))
    elsewhere = run_metric_bytes(0, {"loss": 0.1}, project="cifar")
    assert [f.automation_id for f in rig.feed(elsewhere).firings] == ["entity"]
    here = run_metric_bytes(0, {"loss": 0.1})
    assert [f.automation_id for f in rig.feed(here).firings] == ["entity", "project"]
    assert rig.feed(run_metric_bytes(0, {"loss": 0.1}, entity="other")).firings == []


def test_no_memory_is_kept_for_runs_nothing_watches() -> None:
    """Records whose metrics no automation watches leave no state behind."""
    rig = Rig(run_automation_dict(LOW_LOSS))
    rig.feed(run_metric_bytes(0, {"acc": 0.1}))
    rig.feed(run_state_bytes("finished"))
    rig.feed(run_metric_bytes(0, {"loss": 0.1}, project="cifar"))
    assert rig.store.data == {}


def test_run_state_automation_fires_on_entering_and_records_the_end() -> None:
    """RUN_STATE fires once per entry into a listed state; the memory notes the end."""
    states = {"run_state_filter": {"states": ["FINISHED"]}}
    rig = Rig(run_automation_dict(states, event="RUN_STATE", id="done"))
    assert rig.feed(run_state_bytes("running")).firings == []
    (out,) = rig.feed(run_state_bytes("finished")).outbounds
    assert parse_action_job(out.value).event_type == "RUN_STATE"
    assert rig.feed(run_state_bytes("finished")).outbounds == []
    assert rig.store.data[PATH].ended_at is not None


def test_cooldown_is_per_run() -> None:
    """cooldown_seconds holds back a second crossing of the same run only."""
    rig = Rig(run_automation_dict(LOW_LOSS, cooldown_seconds=60))
    fired = []
    for step, value in enumerate([0.1, 0.9, 0.1]):
        fired.append(len(rig.feed(run_metric_bytes(step, {"loss": value})).firings))
    other = run_metric_bytes(3, {"loss": 0.1}, run={"id": "run-2"})
    fired.append(len(rig.feed(other).firings))
    assert fired == [1, 0, 0, 1]


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        ({"scope": {"type": "registry", "entity": "acme", "registry": "model"}}, "scope.type",
         "project or entity scope"),
        ({"filter": {"run_metric_filter": {}}}, "filter.run_metric_filter",
         "exactly one run_metric_filter"),
        ({"filter": {"run_metric_filter": {"threshold_filter": {
            "name": "loss", "cmp_op": "$between", "threshold": 1}}}},
         "filter.run_metric_filter.threshold_filter.cmp_op", "Input should be"),
        ({"filter": {**LOW_LOSS, "run_filter": "{not json"}}, "filter.run_filter",
         "not valid JSON"),
        ({"filter": {**LOW_LOSS, "run_filter": '{"artifact": 1}'}},
         "filter.run_filter.artifact", "unknown run field"),
        ({"filter": None}, "filter", "needs a filter"),
    ],
)  # fmt: skip
def test_invalid_run_automations_are_refused_with_field_and_reason(
    overrides: dict[str, Any], path: str, reason: str
) -> None:
    """A run automation with a bad scope or filter names the field and why."""
    data = run_automation_dict(LOW_LOSS)
    data.update(overrides)
    if overrides.get("filter", 0) is None:
        del data["filter"]
    with pytest.raises(InvalidAutomationError) as err:
        parse_automation(data)
    found = dict(err.value.errors)
    assert path in found, found
    assert reason in found[path]


def test_a_run_record_with_an_unreadable_header_key_is_a_dead_letter_keyed_as_received() -> None:
    """A header key that is not UTF-8 (the lenient transport keeps it as bytes) dead-letters
    the record, as on the event path, and the dead letter keeps the record's key."""
    rig = Rig(run_automation_dict(LOW_LOSS))
    source = SourceInfo("run-events", 2, 0, key=PATH.encode(), headers=[(b"\xff", b"v")])
    result = rig.pipeline.process(
        run_metric_bytes(1, {"loss": 0.1}), store=rig.store, source=source
    )
    assert result.record is None
    assert result.firings == []
    assert result.dead_letter is not None
    assert DeadLetter.model_validate_json(result.dead_letter).error_code == "unreadable_header"
    assert result.dead_letter_key == PATH.encode()
    assert rig.store.data == {}


def test_cooldown_is_refused_on_artifact_events_which_take_an_entity_scope() -> None:
    """cooldown_seconds belongs to run automations only; an entity scope to both kinds."""
    from tests.factories import automation_dict

    data = automation_dict()
    data["scope"] = {"type": "entity", "entity": "acme"}
    assert parse_automation(data).scope.type == "entity"
    with pytest.raises(InvalidAutomationError) as err:
        parse_automation(automation_dict(cooldown_seconds=5))
    assert "cooldown_seconds" in dict(err.value.errors)


def test_run_event_names_are_read_in_any_case_and_listed_when_unknown() -> None:
    """The automation event check (W&B SDK look-ups are case-insensitive) knows run events."""
    data = run_automation_dict(LOW_LOSS)
    assert parse_automation({**data, "event": " run_metric "}).event.value == "RUN_METRIC"
    with pytest.raises(InvalidAutomationError) as err:
        parse_automation({**data, "event": "RUN_LOG"})
    reason = dict(err.value.errors)["event"]
    assert "unknown event type 'RUN_LOG'" in reason
    assert "RUN_METRIC_ZSCORE" in reason
    assert "REMOVE_ARTIFACT_ALIAS" in reason


def test_run_automations_stay_out_of_the_artifact_event_index() -> None:
    """A run automation in the automation index never matches an artifact event."""
    from app.contract.automations import EntityScope
    from app.core.scopes import scope_mismatches
    from tests.factories import make_event

    entity = run_automation_dict(LOW_LOSS, id="entity")
    entity["scope"] = {"type": "entity", "entity": "acme"}
    index = AutomationIndex(
        [parse_automation(entity), parse_automation(run_automation_dict(LOW_LOSS))]
    )
    assert len(index) == 2
    event = make_event()
    assert index.match(event) == []
    # The event lies inside the entity scope: only the event type keeps them apart.
    assert scope_mismatches(EntityScope(type="entity", entity=event.entity), event) == []
