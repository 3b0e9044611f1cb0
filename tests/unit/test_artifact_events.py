"""More artifact events: UNLINK_ARTIFACT, tag events, REMOVE_ARTIFACT_ALIAS, entity scopes."""

from __future__ import annotations

from typing import Any

import pytest

from app.cli.main import _event_from_flags, build_parser
from app.contract.automations import parse_automation
from app.contract.dead_letters import DeadLetterCode
from app.contract.events import parse_event
from app.contract.schemas import render_schemas
from app.core.documents import filter_document, template_variables
from app.core.explain import explain
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.errors import InvalidAutomationError, InvalidEventError
from app.lang.filters import compile_filter
from app.lang.templating import compile_template
from app.serialization import dumps, loads
from tests.factories import (
    ACTION_TOPICS,
    NOW,
    automation_dict,
    event_dict,
    make_automation,
    make_event,
)

NEW_TYPES = ("UNLINK_ARTIFACT", "ADD_ARTIFACT_TAG", "REMOVE_ARTIFACT_TAG", "REMOVE_ARTIFACT_ALIAS")
ENTITY = {"type": "entity", "entity": "acme"}
SOURCE = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 7}


def of_type(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A valid registry event of this type (the factory's, with the type's own fields)."""
    fields: dict[str, Any] = {"event_type": event_type, "alias": None}
    if "ALIAS" in event_type:
        fields["alias"] = "production"
    if "TAG" in event_type:
        fields["tag"] = "candidate"
    if "LINK" in event_type:
        fields["source"] = SOURCE
    return event_dict(**{**fields, **overrides})


def run(
    automations: list[Any], events: list[dict[str, Any]], store: MemoryAliasStore | None = None
) -> list[Any]:
    """Process events in order through one pipeline and alias store; the results."""
    pipeline = Pipeline(AutomationIndex(automations), ACTION_TOPICS, 1 << 20, lambda: NOW)
    aliases = store if store is not None else MemoryAliasStore()
    return [
        pipeline.process(dumps(event), aliases=aliases, source=SourceInfo("t", 0, n))
        for n, event in enumerate(events)
    ]


@pytest.mark.parametrize("event_type", NEW_TYPES)
def test_each_new_type_is_a_valid_event(event_type: str) -> None:
    """Every new type parses, with its own fields."""
    event, _ = parse_event(dumps(of_type(event_type)), 1 << 20)
    assert event.event_type.value == event_type


@pytest.mark.parametrize(
    ("event_type", "missing"),
    [
        ("ADD_ARTIFACT_TAG", "tag"),
        ("REMOVE_ARTIFACT_TAG", "tag"),
        ("REMOVE_ARTIFACT_ALIAS", "alias"),
    ],
)
def test_the_type_field_is_required(event_type: str, missing: str) -> None:
    """A tag event without `tag`, a removal without `alias`: a MISSING_FIELD dead letter."""
    with pytest.raises(InvalidEventError) as info:
        parse_event(dumps(of_type(event_type, **{missing: None})), 1 << 20)
    assert info.value.code == DeadLetterCode.MISSING_FIELD
    assert info.value.reason.startswith(missing)
    assert event_type in info.value.reason


def test_filter_document_alias_and_tag_follow_the_event_type() -> None:
    """`tag`/`alias`: the tag or alias of its own events, the version's lists elsewhere."""
    tag_doc = filter_document(make_event(**of_type("ADD_ARTIFACT_TAG")))
    assert tag_doc["tag"] == "candidate"
    assert tag_doc["alias"] == ["latest", "production"]
    removal = filter_document(make_event(**of_type("REMOVE_ARTIFACT_ALIAS")))
    assert removal["alias"] == "production"
    assert removal["tag"] == ["baseline"]
    assert compile_filter({"tag": "baseline"}).matches(removal)
    assert not compile_filter({"tag": "candidate"}).matches(removal)


def test_tag_and_alias_variables_render_per_event_type() -> None:
    """${tag} is the tag of a tag event, ${alias} the alias removed; empty elsewhere."""
    template = compile_template("[${tag}|${alias}]")
    tagged = template_variables(make_event(**of_type("REMOVE_ARTIFACT_TAG")))
    removed = template_variables(make_event(**of_type("REMOVE_ARTIFACT_ALIAS")), 2)
    unlinked = template_variables(make_event(**of_type("UNLINK_ARTIFACT")))
    assert template.render(tagged) == "[candidate|]"
    assert template.render(removed) == "[|production]"
    assert template.render(unlinked) == "[|]"
    assert removed["previous_version"] == "v2"


@pytest.mark.parametrize("event_type", ["ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT", *NEW_TYPES])
def test_entity_scope_is_every_project_and_registry_of_the_entity(event_type: str) -> None:
    """An entity automation fires on registry and project events of its entity only."""
    automation = make_automation(event=event_type, scope=ENTITY, filter=None)
    inside = [
        of_type(event_type, event_id="registry"),
        of_type(event_type, event_id="project", project="vision", registry=None),
    ]
    outside = of_type(event_type, event_id="other", entity="globex")
    results = run([automation], [*inside, outside])
    assert [bool(r.matched) for r in results] == [True, True, False]
    other = explain(automation, make_event(**outside))
    assert other.reasons == ["scope entity is 'acme' but the event's entity is 'globex'"]


def test_create_artifact_refuses_an_entity_scope() -> None:
    """CREATE_ARTIFACT takes an artifact_collection scope only, as in the W&B SDK."""
    with pytest.raises(InvalidAutomationError) as info:
        parse_automation({**automation_dict(event="CREATE_ARTIFACT"), "scope": ENTITY})
    assert info.value.errors[0][0] == "scope.type"


def test_a_filter_string_that_is_not_json_is_refused() -> None:
    """A filter given as text must be JSON; the error names the filter."""
    with pytest.raises(InvalidAutomationError) as info:
        parse_automation(automation_dict(filter='{"$or": ['))
    ((path, reason),) = info.value.errors
    assert path == "filter"
    assert "must be JSON" in reason


def test_remove_alias_carries_the_version_the_alias_pointed_to() -> None:
    """previous_version of a removal is the pointer's version; the pointer then goes."""
    automation = make_automation(event="REMOVE_ARTIFACT_ALIAS", filter={"alias": "production"})
    store = MemoryAliasStore()
    add = of_type("ADD_ARTIFACT_ALIAS", event_id="add", artifact={"version": 2})
    removal = of_type("REMOVE_ARTIFACT_ALIAS", event_id="remove", artifact={"version": 3})
    results = run([automation], [add, removal], store)
    assert results[1].previous_version == 2
    job = loads(results[1].outbounds[0].value)
    assert job["previous_version"] == 2
    assert job["event_type"] == "REMOVE_ARTIFACT_ALIAS"
    pointers = store.get("acme/wandb-registry-model/mnist-classifier") or {}
    assert "production" not in pointers
    # Unknown to the pointers (or a redelivery): the event's own version.
    (again,) = run([automation], [removal], store)
    assert again.previous_version == 3


def test_unlink_drops_the_aliases_of_the_unlinked_version() -> None:
    """After an unlink, re-adding the alias elsewhere has no previous version."""
    store = MemoryAliasStore()
    add = of_type("ADD_ARTIFACT_ALIAS", event_id="add", artifact={"version": 3})
    unlink = of_type("UNLINK_ARTIFACT", event_id="unlink", artifact={"version": 3, "aliases": []})
    other = of_type("ADD_ARTIFACT_ALIAS", event_id="other", artifact={"version": 5})
    results = run([make_automation()], [add, unlink, other], store)
    assert results[1].previous_version is None
    assert results[2].previous_version is None
    assert store.get("acme/wandb-registry-model/mnist-classifier") == {
        "latest": 5,
        "production": 5,
    }


def test_schemas_list_the_new_types_and_the_entity_scope() -> None:
    """event.schema.json names every new type; automation.schema.json the entity scope."""
    schemas = render_schemas()
    event_schema = loads(schemas["event.schema.json"])
    assert set(NEW_TYPES) <= set(event_schema["properties"]["event_type"]["enum"])
    assert "tag" in event_schema["properties"]
    assert "EntityScope" in loads(schemas["automation.schema.json"])["$defs"]
    needs = {
        tuple(rule["if"]["properties"]["event_type"]["enum"]): rule["then"]["required"]
        for rule in event_schema["allOf"]
    }
    assert needs == {
        ("ADD_ARTIFACT_ALIAS", "REMOVE_ARTIFACT_ALIAS"): ["alias"],
        ("ADD_ARTIFACT_TAG", "REMOVE_ARTIFACT_TAG"): ["tag"],
        ("LINK_ARTIFACT", "LINK_MODEL"): ["source"],
    }


@pytest.mark.parametrize("event_type", NEW_TYPES)
def test_publish_flags_build_a_valid_event_of_each_new_type(event_type: str) -> None:
    """`hookstream publish --type T --tag/--alias` builds an event parse_event accepts."""
    args = build_parser().parse_args(
        [
            "publish",
            *("--type", event_type, "--entity", "acme", "--project", "vision"),
            *("--collection", "mnist", "--version", "2", "--tag", "gold", "--alias", "prod"),
        ]
    )
    event, _ = parse_event(dumps(_event_from_flags(args)), 1 << 20)
    assert event.event_type.value == event_type
    assert (event.tag, event.alias) == ("gold", "prod")


@pytest.mark.parametrize("event_type", NEW_TYPES)
def test_dry_run_explains_each_new_type(event_type: str) -> None:
    """explain() of each new type: a match has no reasons; a filter miss names the field,
    another type names both types."""
    field = "tag" if "TAG" in event_type else "alias"
    automation = make_automation(event=event_type, scope=ENTITY, filter={field: "gold"})
    value = "gold" if "TAG" in event_type or event_type == "REMOVE_ARTIFACT_ALIAS" else None
    overrides: dict[str, Any] = {field: value} if value else {"artifact": {"aliases": ["gold"]}}
    hit = explain(automation, make_event(**of_type(event_type, **overrides)))
    assert (hit.matched, hit.reasons) == (True, [])
    miss = explain(automation, make_event(**of_type(event_type)))
    assert not miss.matched
    assert any(reason.startswith(f"filter.{field}") for reason in miss.reasons), miss.reasons
    other = explain(automation, make_event())
    assert f"listens for {event_type}" in other.reasons[0]
