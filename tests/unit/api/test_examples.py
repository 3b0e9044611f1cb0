"""Typed example events for dry runs: valid, of the right type, inside the scope."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.examples import example_event
from app.contract.events import parse_event
from app.core.explain import explain
from app.core.scopes import registry_project
from app.serialization import dumps
from tests.factories import NOW, make_automation

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
