"""The console's form and YAML editor: to and from the API's JSON, errors at fields."""

from __future__ import annotations

import pytest

from app.api.console.forms import (
    automation_from_form,
    automation_from_yaml,
    form_from_automation,
    yaml_line,
    yaml_of,
)
from app.api.problems import ApiError
from app.api.validation import validate_automation
from app.core.stored import spec_json
from app.settings import Settings
from tests.factories import automation_dict, make_automation

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
