"""Typed example events for dry runs: valid, of the right type, inside the scope."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.dryrun import dry_run
from app.api.examples import example_event, example_run_records
from app.contract.automations import parse_automation
from app.contract.events import parse_event
from app.contract.runs import parse_run_record
from app.core.explain import explain
from app.core.scopes import registry_project
from app.serialization import dumps
from app.settings import Settings
from tests.factories import NOW, make_automation, run_automation_dict

SCOPES: dict[str, dict[str, Any]] = {
    "project": {"type": "project", "entity": "acme", "project": "vision"},
    "registry": {"type": "registry", "entity": "acme", "registry": "model"},
    "project-collection": {
        "type": "artifact_collection",
        "entity": "acme",
        "project": "vision",
        "collection": "mnist",
    },
    "registry-collection": {
        "type": "artifact_collection",
        "entity": "acme",
        "registry": "model",
        "collection": "classifier",
    },
    "entity": {"type": "entity", "entity": "acme"},
}

EVENT_TYPES = (
    "CREATE_ARTIFACT",
    "ADD_ARTIFACT_ALIAS",
    "LINK_ARTIFACT",
    *("UNLINK_ARTIFACT", "ADD_ARTIFACT_TAG", "REMOVE_ARTIFACT_TAG", "REMOVE_ARTIFACT_ALIAS"),
)


def cases() -> list[tuple[str, str]]:
    """Every (event type, scope) pair an automation may have."""
    out = []
    for event in EVENT_TYPES:
        for scope in SCOPES:
            if event == "CREATE_ARTIFACT" and "collection" not in scope:
                continue  # CREATE_ARTIFACT takes a collection scope only
            out.append((event, scope))
    return out


@pytest.mark.parametrize(("event_type", "scope"), cases())
def test_example_is_a_valid_event_that_matches_an_unfiltered_automation(
    event_type: str, scope: str
) -> None:
    """Right type, inside the scope, valid for parse_event: a filterless automation fires."""
    automation = make_automation(event=event_type, scope=SCOPES[scope], filter=None)
    event, _ = parse_event(dumps(example_event(automation, NOW)), 1 << 20)
    assert event.event_type.value == event_type
    assert explain(automation, event).reasons == []


def test_registry_examples_use_the_registry_project_name() -> None:
    """Registry collections live in project wandb-registry-<name>, as in W&B."""
    automation = make_automation(scope=SCOPES["registry"])
    data = example_event(automation, NOW)
    assert data["project"] == registry_project("model") == "wandb-registry-model"
    assert data["registry"] == "model"


def test_simple_filter_values_are_honoured() -> None:
    """Equality, $eq, $in, $contains and metadata keys shape the example so it matches."""
    automation = make_automation(
        scope=SCOPES["project"],
        filter={
            "alias": "champion",
            "$and": [{"type": {"$in": ["dataset", "model"]}}, {"tags": {"$contains": "gold"}}],
            "metadata.framework": {"$eq": "jax"},
            "version": 7,
        },
    )
    data = example_event(automation, NOW)
    event, _ = parse_event(dumps(data), 1 << 20)
    assert (event.alias, event.artifact.type, event.artifact.version) == ("champion", "dataset", 7)
    assert "gold" in event.artifact.tags
    assert event.artifact.metadata == {"framework": "jax"}
    assert explain(automation, event).matched


def test_unsatisfiable_filters_are_left_to_the_explanation() -> None:
    """A regex is not guessed; the dry run then names the failing clause."""
    automation = make_automation(scope=SCOPES["registry"], filter={"alias": {"$regex": "^rc-"}})
    event, _ = parse_event(dumps(example_event(automation, NOW)), 1 << 20)
    reasons = explain(automation, event).reasons
    assert len(reasons) == 1
    assert '$regex "^rc-"' in reasons[0]


@pytest.mark.parametrize("event_type", EVENT_TYPES[3:])
def test_sdk_wrapped_filters_on_alias_and_tag_shape_the_example(event_type: str) -> None:
    """Pins inside the W&B SDK's {"$or": [{"$and": [...]}]} wrapper shape the example too."""
    field = "tag" if "TAG" in event_type else "alias"
    automation = make_automation(
        event=event_type,
        scope=SCOPES["entity"],
        filter={"$or": [{"$and": [{field: {"$eq": "gold"}}]}]},
    )
    event, _ = parse_event(dumps(example_event(automation, NOW)), 1 << 20)
    assert explain(automation, event).matched


def _threshold(cmp_op: str, agg_op: str | None, window: int = 3) -> dict[str, Any]:
    spec = {"name": "loss", "agg_op": agg_op, "window_size": window, "cmp_op": cmp_op,
            "threshold": 0.5}  # fmt: skip
    return {"run_metric_filter": {"threshold_filter": spec}}


def _change(kind: str, direction: str, agg_op: str | None) -> dict[str, Any]:
    spec = {"name": "acc", "agg_op": agg_op, "current_window_size": 2, "prior_window_size": 3,
            "change_amount": 0.2, "change_type": kind, "change_dir": direction}  # fmt: skip
    return {"run_metric_filter": {"change_filter": spec}}


def _zscore(direction: str, window: int) -> dict[str, Any]:
    spec = {"name": "loss", "window_size": window, "threshold": 2.5, "change_dir": direction}
    return {"run_metric_filter": {"zscore_filter": spec}}


RUN_CASES: list[tuple[str, dict[str, Any]]] = [
    *(("RUN_METRIC", _threshold(op, agg)) for op in ("$gt", "$gte", "$lt", "$lte", "$eq", "$ne")
      for agg in (None, "AVERAGE", "MIN", "MAX")),
    *(("RUN_METRIC_CHANGE", _change(kind, way, agg)) for kind in ("ABSOLUTE", "RELATIVE")
      for way in ("INCREASE", "DECREASE", "ANY") for agg in (None, "AVERAGE")),
    *(("RUN_METRIC_ZSCORE", _zscore(way, window)) for way in ("INCREASE", "DECREASE", "ANY")
      for window in (2, 5, 30)),
    *(("RUN_STATE", {"run_state_filter": {"states": states}})
      for states in (["FINISHED"], ["FAILED", "CRASHED"], ["KILLED"], ["RUNNING"])),
    ("RUN_METRIC", {**_threshold("$lt", None), "run_filter": dumps({"$and": [
        {"display_name": {"$eq": "nightly"}}, {"tags": {"$contains": "prod"}},
        {"config.lr": 0.1}, {"user": "carol"}]}).decode()}),
]  # fmt: skip


@pytest.mark.parametrize(("event", "run_filter"), RUN_CASES)
def test_example_run_records_make_the_run_automation_fire(
    event: str, run_filter: dict[str, Any]
) -> None:
    """Generated run records are valid, inside the scope, and fire once (on the edge)."""
    data = run_automation_dict(run_filter, event=event)
    data["scope"] = {"type": "entity", "entity": "acme"}
    automation = parse_automation(data)
    records = example_run_records(automation, NOW)
    for record in records:
        parse_run_record(dumps(record), 1 << 20)
    result = dry_run(automation, None, Settings(), NOW)
    assert result["matched"], result["records"][-1]["reasons"]
    assert result["event_generated"]
    assert result["event"] == records
    assert [r["fired"] for r in result["records"]].count(True) == 1
    assert result["job"]["event_type"] == event
