"""The console's form and YAML editor: to and from the API's JSON, errors at fields."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.console.forms import (
    automation_from_form,
    automation_from_yaml,
    form_from_automation,
    input_of,
    yaml_line,
    yaml_of,
)
from app.api.problems import ApiError
from app.api.validation import validate_automation
from app.core.stored import spec_json
from app.serialization import loads
from app.settings import Settings
from tests.factories import automation_dict, make_automation, run_automation_dict

NOTIFY = {
    "type": "notification",
    "channel": "ml-team",
    "title": "New model ${artifact_version_string}",
    "message": "by ${event_author}",
    "severity": "WARN",
}
QUEUE = {"type": "queue_job", "queue": "gpu", "job": "acme/train:latest", "config": {"epochs": 3}}
WEBHOOK = {
    "type": "webhook",
    "url": "https://ci.example.com/hooks/deploy",
    "payload": '{"model": "${artifact_version_string}"}',
    "headers": {"X-Team": "ml"},
    "secret": "DEPLOY_HOOK_SECRET",
    "access_token": "DEPLOY_HOOK_TOKEN",
}
KAFKA = {"type": "kafka", "topic": "model-links", "payload": '{"v": "${artifact_version}"}'}


@pytest.mark.parametrize("action", [NOTIFY, QUEUE, WEBHOOK, KAFKA, {"type": "no_op"}])
def test_form_round_trips_every_action_type(action: dict[str, object]) -> None:
    """form_from_automation then automation_from_form gives back the same automation."""
    automation = make_automation(
        action=action, filter={"alias": "production"}, description="why", enabled=False
    )
    values = form_from_automation(spec_json(automation))
    back = validate_automation(automation_from_form(values), Settings())
    assert spec_json(back) == spec_json(automation)


def test_only_the_chosen_action_types_fields_are_read() -> None:
    """A kafka payload left in the form does not leak into a webhook action."""
    values = form_from_automation(automation_dict())
    values["kafka.payload"] = '{"stale": true}'
    values["kafka.topic"] = "elsewhere"
    action = automation_from_form(values)["action"]
    assert set(action) == {"type", "url", "payload"}


def test_unchecked_enabled_is_false_and_empty_fields_are_left_out() -> None:
    """A checkbox not sent means disabled; blank inputs are absent, not empty strings."""
    data = automation_from_form({"id": "x", "scope.type": "project", "scope.project": " "})
    assert data["enabled"] is False
    assert data["scope"] == {"type": "project"}
    assert "filter" not in data
    assert "description" not in data


@pytest.mark.parametrize(
    ("field", "form_name", "text", "needle"),
    [
        ("filter", "filter", "{nope", "not valid JSON"),
        ("filter", "filter", "[1]", "must be a JSON object"),
        ("action.headers", "webhook.headers", "3", "must be a JSON object"),
    ],
)
def test_json_fields_that_do_not_read_are_errors_at_their_field(
    field: str, form_name: str, text: str, needle: str
) -> None:
    """Unreadable JSON is a 422 naming the API's field path."""
    values = {**form_from_automation(automation_dict()), form_name: text}
    with pytest.raises(ApiError) as caught:
        automation_from_form(values)
    assert caught.value.status == 422
    [(named, reason)] = caught.value.errors
    assert named == field
    assert needle in reason


def test_yaml_of_reads_back_as_the_same_automation() -> None:
    """The YAML the editor shows is what automation_from_yaml parses."""
    stored = automation_dict(filter={"alias": {"$regex": "^prod"}})
    assert automation_from_yaml(yaml_of(stored)) == stored


@pytest.mark.parametrize(
    ("text", "needle"),
    [("a: [1", "not valid YAML"), ("", "found 0"), ("a: 1\n---\nb: 2\n", "found 2")],
)
def test_yaml_that_is_not_one_document_is_an_error_at_yaml(text: str, needle: str) -> None:
    """Unparseable YAML, or not exactly one document, is refused at field `yaml`."""
    with pytest.raises(ApiError) as caught:
        automation_from_yaml(text)
    [(field, reason)] = caught.value.errors
    assert field == "yaml"
    assert needle in reason


def test_yaml_line_finds_the_key_of_a_dotted_path() -> None:
    """The line of the deepest key the path reaches; None when the path is absent."""
    text = "id: x\nscope:\n  type: registry\naction:\n  type: webhook\n  url: ftp://x\n"
    assert yaml_line(text, "action.url") == 6
    assert yaml_line(text, "scope.type") == 3
    assert yaml_line(text, "scope.registry") == 2
    assert yaml_line(text, "missing") is None
    assert yaml_line("a: [1", "a") is None


def test_form_takes_an_entity_scope_a_tag_event_and_the_sdk_defaults() -> None:
    """scope.type=entity, ADD_ARTIFACT_TAG, an empty title and payload: a valid automation
    with the documented defaults."""
    form = {
        "id": "tags",
        "name": "Tags",
        "event": "ADD_ARTIFACT_TAG",
        "scope.type": "entity",
        "scope.entity": "acme",
        "filter": '{"$or": [{"$and": [{"tag": {"$eq": "candidate"}}]}]}',
        "action.type": "notification",
        "notification.channel": "ml-team",
        "notification.title": "",
    }
    data = automation_from_form(form)
    assert data["scope"] == {"type": "entity", "entity": "acme"}
    automation = make_automation(**data)
    assert automation.action.type == "notification"
    assert automation.action.title == "${event_type} on ${artifact_version_string}"


RUN_SCOPE = {"type": "entity", "entity": "acme"}
# One run automation of each run event type, in the forms the contract takes: run_filter
# as the SDK's JSON text or as an object, the SDK's `metric_filter: null`, a cooldown.
RUN_AUTOMATIONS: list[dict[str, Any]] = [
    run_automation_dict(
        {
            "run_filter": '{"$and":[{"display_name":{"$contains":"exp"}}]}',
            "run_metric_filter": {"threshold_filter": {
                "name": "loss", "agg_op": "AVERAGE", "window_size": 5, "cmp_op": "$lt",
                "threshold": 0.1}},
        },
        cooldown_seconds=30,
    ),
    {**run_automation_dict(
        {
            "run_filter": {"tags": {"$in": ["baseline"]}},
            "run_metric_filter": {"change_filter": {
                "name": "acc", "agg_op": "MAX", "current_window_size": 3,
                "prior_window_size": 3, "change_amount": 0.1, "change_type": "RELATIVE",
                "change_dir": "INCREASE"}},
        },
        event="RUN_METRIC_CHANGE",
    ), "scope": RUN_SCOPE},
    run_automation_dict(
        {
            "run_filter": '{"$and":[]}',
            "metric_filter": None,
            "run_metric_filter": {"zscore_filter": {
                "name": "loss", "window_size": 30, "threshold": 3, "change_dir": "ANY"}},
        },
        event="RUN_METRIC_ZSCORE",
        cooldown_seconds=1.5,
    ),
    {**run_automation_dict(
        {"run_state_filter": {"states": ["FINISHED", "FAILED"]}}, event="RUN_STATE"
    ), "scope": RUN_SCOPE, "action": NOTIFY},
]  # fmt: skip


@pytest.mark.parametrize("spec", RUN_AUTOMATIONS, ids=lambda spec: str(spec["event"]))
def test_form_round_trips_a_run_automation_of_each_run_event_type(spec: dict[str, Any]) -> None:
    """A run automation's filter is split over the run inputs and read back exactly:
    run_filter as text or object, metric_filter null, the cooldown."""
    automation = make_automation(**spec)
    stored = spec_json(automation)
    values = form_from_automation(stored)
    run_filter = stored["filter"].get("run_filter")
    if isinstance(run_filter, str):
        assert values["filter.run_filter"] == run_filter
    for key in ("run_metric_filter", "run_state_filter"):
        given = stored["filter"].get(key)
        assert (loads(values[f"filter.{key}"]) if values[f"filter.{key}"] else None) == given
    assert ("metric_filter" in stored["filter"]) == (values["filter"] != "")
    back = automation_from_form(values)
    assert back["filter"] == stored["filter"]
    assert spec_json(validate_automation(back, Settings())) == stored


def test_a_run_automation_typed_into_the_form_is_the_sdks_json() -> None:
    """Typed run inputs make the filter the SDK stores: run_filter kept as JSON text."""
    form = {
        "id": "loss-low",
        "name": "Loss low",
        "event": "RUN_METRIC",
        "scope.type": "project",
        "scope.entity": "acme",
        "scope.project": "mnist",
        "filter.run_filter": '{"$and": [{"display_name": {"$contains": "exp"}}]}',
        "filter.run_metric_filter": (
            '{"threshold_filter": {"name": "loss", "cmp_op": "$lt", "threshold": 0.1}}'
        ),
        "cooldown_seconds": "60",
        "action.type": "no_op",
    }
    data = automation_from_form(form)
    assert data["filter"] == {
        "run_filter": '{"$and": [{"display_name": {"$contains": "exp"}}]}',
        "run_metric_filter": {
            "threshold_filter": {"name": "loss", "cmp_op": "$lt", "threshold": 0.1}
        },
    }
    assert data["cooldown_seconds"] == 60
    assert validate_automation(data, Settings()).is_run_automation


@pytest.mark.parametrize(
    ("form_name", "text", "needle"),
    [
        ("filter.run_metric_filter", "{nope", "not valid JSON"),
        ("filter.run_state_filter", '["FINISHED"]', "must be a JSON object"),
        ("filter.run_filter", "[]", "must be a JSON object"),
        ("cooldown_seconds", "soon", "must be a number of seconds"),
    ],
)
def test_run_inputs_that_do_not_read_are_errors_at_their_input(
    form_name: str, text: str, needle: str
) -> None:
    """Unreadable run inputs are a 422 at their own field path."""
    values = {**form_from_automation(RUN_AUTOMATIONS[0]), form_name: text}
    with pytest.raises(ApiError) as caught:
        automation_from_form(values)
    [(named, reason)] = caught.value.errors
    assert named == form_name
    assert needle in reason


def test_a_run_key_in_both_the_filter_and_its_input_is_an_error() -> None:
    """run_metric_filter typed in the filter and in its input is refused, not merged."""
    values = form_from_automation(RUN_AUTOMATIONS[0])
    values["filter"] = '{"run_metric_filter": {}}'
    with pytest.raises(ApiError) as caught:
        automation_from_form(values)
    [(named, reason)] = caught.value.errors
    assert named == "filter.run_metric_filter"
    assert "given twice" in reason


@pytest.mark.parametrize(
    ("path", "shown_at"),
    [
        ("filter.run_metric_filter.threshold_filter.threshold.int", "filter.run_metric_filter"),
        ("filter.run_filter.nope", "filter.run_filter"),
        ("filter.alias.$bad", "filter"),
        ("cooldown_seconds.float", "cooldown_seconds"),
        ("scope.type", "scope.type"),
        ("scope.galaxy", "scope"),
        ("action.headers.X-Team", "action.headers"),
        ("", ""),
        ("elsewhere", "elsewhere"),
    ],
)
def test_an_error_is_shown_at_the_input_of_its_longest_prefix(path: str, shown_at: str) -> None:
    """input_of: the API's deeper field paths land on the input that holds them."""
    assert input_of(path) == shown_at
