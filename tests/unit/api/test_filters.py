"""GET /automations query parameters: strict parsing and the filters they apply."""

from __future__ import annotations

import pytest

from app.api.problems import ApiError
from app.api.query import AutomationQuery, parse_query, select
from app.contract.automations import Automation
from app.contract.events import EventType
from tests.factories import make_automation

REGISTRY = {"type": "registry", "entity": "acme", "registry": "model"}
PROJECT = {"type": "project", "entity": "acme", "project": "vision"}
COLLECTION = {
    "type": "artifact_collection",
    "entity": "globex",
    "registry": "model",
    "collection": "mnist",
}


def automations() -> list[Automation]:
    """Three automations that differ in event, scope, action and enabled."""
    return [
        make_automation(id="reg", scope=REGISTRY),
        make_automation(id="proj", scope=PROJECT, enabled=False, action={"type": "no_op"}),
        make_automation(id="coll", scope=COLLECTION, event="CREATE_ARTIFACT"),
    ]


def ids(**params: str) -> list[str]:
    """Ids kept by a query string given as keyword arguments."""
    return [a.id for a in select(automations(), parse_query(params))]


def test_no_parameters_keep_everything_sorted_by_id() -> None:
    """An empty query lists every automation, disabled ones included, by id."""
    assert ids() == ["coll", "proj", "reg"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event": "CREATE_ARTIFACT"}, ["coll"]),
        ({"scope_type": "project"}, ["proj"]),
        ({"entity": "acme"}, ["proj", "reg"]),
        ({"project": "vision"}, ["proj"]),
        ({"registry": "model"}, ["coll", "reg"]),
        ({"collection": "mnist"}, ["coll"]),
        ({"action_type": "no_op"}, ["proj"]),
        ({"enabled": "false"}, ["proj"]),
        ({"enabled": "true", "registry": "model", "entity": "globex"}, ["coll"]),
    ],
)
def test_each_parameter_narrows_the_list(params: dict[str, str], expected: list[str]) -> None:
    """Every filter compares one field of the automation or its scope; they combine with AND."""
    assert ids(**params) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("glob", ["coll"]),
        ("ACME", ["proj", "reg"]),
        ("acme vision", ["proj"]),
        ("mnist model", ["coll"]),
        ("nothing-like-this", []),
        ("", ["coll", "proj", "reg"]),
    ],
)
def test_q_searches_id_name_description_and_scope(q: str, expected: list[str]) -> None:
    """`q` keeps automations whose text holds every word, case-insensitively."""
    assert ids(q=q) == expected


def test_link_model_is_read_as_link_artifact() -> None:
    """The legacy event name filters like its current one."""
    assert parse_query({"event": "LINK_MODEL"}).event is EventType.LINK_ARTIFACT


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"colour": "red"}, "unknown query parameter colour"),
        ({"event": "DELETE"}, "expected one of"),
        ({"enabled": "maybe"}, "expected true or false"),
        ({"scope_type": "galaxy"}, "scope_type"),
        ({"action_type": "email"}, "action_type"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(params: dict[str, str], needle: str) -> None:
    """Unknown names and values are refused, not ignored."""
    with pytest.raises(ApiError) as caught:
        parse_query(params)
    assert caught.value.status == 400
    assert needle in caught.value.reason


def test_default_query_filters_nothing() -> None:
    """AutomationQuery() is 'any' in every field."""
    assert len(select(automations(), AutomationQuery())) == 3


def test_entity_scope_and_new_event_types_filter_the_list() -> None:
    """scope_type=entity and event=ADD_ARTIFACT_TAG select the entity-scoped tag automation."""
    tagged = make_automation(
        id="tagged", event="ADD_ARTIFACT_TAG", scope={"type": "entity", "entity": "acme"}
    )
    every = [*automations(), tagged]
    assert [a.id for a in select(every, parse_query({"scope_type": "entity"}))] == ["tagged"]
    assert [a.id for a in select(every, parse_query({"event": "ADD_ARTIFACT_TAG"}))] == ["tagged"]
