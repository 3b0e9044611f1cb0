"""Scope index and explanations: isolation between scopes, disabled automations, dry runs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contract.automations import Automation
from app.core.explain import explain
from app.core.matching import AutomationIndex, CompiledAutomation
from app.errors import InvalidAutomationError
from tests.factories import make_automation, make_event

REGISTRY = {"type": "registry", "entity": "acme", "registry": "model"}
PROJECT = {"type": "project", "entity": "acme", "project": "vision"}
PROJECT_COLLECTION = {
    "type": "artifact_collection",
    "entity": "acme",
    "project": "vision",
    "collection": "mnist",
}
REGISTRY_COLLECTION = {
    "type": "artifact_collection",
    "entity": "acme",
    "registry": "model",
    "collection": "mnist-classifier",
}


def project_event(**overrides: Any) -> Any:
    """An ADD_ARTIFACT_ALIAS event in project acme/vision, collection mnist."""
    base: dict[str, Any] = {
        "registry": None,
        "project": "vision",
        "artifact": {"collection": "mnist"},
    }
    base.update(overrides)
    return make_event(**base)


def auto(automation_id: str, scope: dict[str, Any], **overrides: Any) -> Automation:
    """An automation with this id and scope."""
    return make_automation(id=automation_id, scope=scope, **overrides)


def ids(index: AutomationIndex, event: Any) -> list[str]:
    """Ids of the automations an event matches."""
    return [c.id for c in index.match(event)]


@pytest.fixture
def index() -> AutomationIndex:
    """One automation per scope kind."""
    return AutomationIndex(
        [
            auto("reg", REGISTRY),
            auto("proj", PROJECT),
            auto("proj-coll", PROJECT_COLLECTION),
            auto("reg-coll", REGISTRY_COLLECTION),
        ]
    )


def test_registry_event_sees_only_registry_scopes(index: AutomationIndex) -> None:
    """A registry event matches registry and registered-model scopes, never project ones."""
    assert ids(index, make_event()) == ["reg", "reg-coll"]


def test_project_event_sees_only_project_scopes(index: AutomationIndex) -> None:
    """A project event matches project and project-collection scopes, never registry ones."""
    assert ids(index, project_event()) == ["proj", "proj-coll"]


def test_registry_event_from_a_project_named_like_the_scope_does_not_match() -> None:
    """A project scope never fires for a registry event even when project names agree."""
    index = AutomationIndex(
        [auto("p", {"type": "project", "entity": "acme", "project": "wandb-registry-model"})]
    )
    assert ids(index, make_event()) == []
    assert ids(index, make_event(registry=None)) == ["p"]


@pytest.mark.parametrize(
    "event_overrides",
    [
        {"entity": "other"},
        {"registry": "dataset"},
        {"artifact": {"collection": "other-model"}},
    ],
)
def test_registry_boundaries(event_overrides: dict[str, Any]) -> None:
    """Another entity, registry or collection is outside the scope."""
    index = AutomationIndex([auto("reg-coll", REGISTRY_COLLECTION)])
    if "artifact" not in event_overrides:
        index.upsert(auto("reg", REGISTRY))
    assert ids(index, make_event(**event_overrides)) == []


def test_same_collection_name_in_another_project_does_not_match() -> None:
    """A collection scope is bound to its project: the same name elsewhere is outside."""
    index = AutomationIndex([auto("proj-coll", PROJECT_COLLECTION)])
    assert ids(index, project_event(project="nlp")) == []
    assert ids(index, project_event(entity="other")) == []
    assert ids(index, project_event()) == ["proj-coll"]


def test_event_type_must_match() -> None:
    """An automation only sees its own event type."""
    index = AutomationIndex([auto("create", PROJECT_COLLECTION, event="CREATE_ARTIFACT")])
    assert ids(index, project_event()) == []
    assert ids(index, project_event(event_type="CREATE_ARTIFACT")) == ["create"]


def test_link_model_automation_matches_link_events() -> None:
    """An automation written with the legacy LINK_MODEL matches LINK_ARTIFACT events."""
    source = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 7}
    index = AutomationIndex([auto("link", REGISTRY, event="LINK_MODEL")])
    assert ids(index, make_event(event_type="LINK_ARTIFACT", source=source)) == ["link"]


def test_disabled_never_fires() -> None:
    """A disabled automation is kept in the index but never matched or offered."""
    index = AutomationIndex([auto("off", REGISTRY, enabled=False)])
    event = make_event()
    assert len(index) == 1
    assert "off" in index
    assert index.candidates(event) == ()
    assert ids(index, event) == []
    compiled = index.get("off")
    assert compiled is not None
    assert not compiled.matches(event)


def test_filter_applies_after_scope() -> None:
    """Candidates in scope still need their filter to match."""
    index = AutomationIndex(
        [
            auto("prod", REGISTRY, filter={"alias": {"$regex": "^prod"}}),
            auto("stag", REGISTRY, filter={"alias": "staging"}),
        ]
    )
    assert [c.id for c in index.candidates(make_event())] == ["prod", "stag"]
    assert ids(index, make_event()) == ["prod"]


def test_upsert_replaces_and_rekeys() -> None:
    """Upserting an id again replaces it, moving it to its new scope."""
    index = AutomationIndex([auto("a", REGISTRY)])
    index.upsert(auto("a", PROJECT, revision=2))
    assert len(index) == 1
    assert ids(index, make_event()) == []
    assert ids(index, project_event()) == ["a"]
    compiled = index.get("a")
    assert compiled is not None
    assert compiled.revision == 2


def test_disable_by_upsert_and_remove() -> None:
    """Upserting a disabled version stops it firing; remove drops it entirely."""
    index = AutomationIndex([auto("a", REGISTRY)])
    index.upsert(auto("a", REGISTRY, enabled=False))
    assert ids(index, make_event()) == []
    removed = index.remove("a")
    assert removed is not None
    assert removed.id == "a"
    assert index.remove("a") is None
    assert len(index) == 0
    assert list(index) == []


def test_loading_one_scope_builds_its_bucket_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upserts only mark a scope stale: 2,000 automations of one scope build one bucket.

    Rebuilding the bucket on every upsert made a worker with 10,000 automations in one
    scope take tens of seconds to load them (quadratic in the bucket's size).
    """
    import app.core.matching as matching

    built: list[int] = []
    real = matching._Bucket.__init__

    def counting(self: Any, members: tuple[CompiledAutomation, ...]) -> None:
        built.append(len(members))
        real(self, members)

    monkeypatch.setattr(matching._Bucket, "__init__", counting)
    index = AutomationIndex(auto(f"a{i:04d}", REGISTRY) for i in range(2000))
    assert built == []
    matched = ids(index, make_event())
    assert built == [2000]
    assert matched == sorted(matched)
    assert len(matched) == 2000
    # A change rebuilds that bucket once, at the next match, not at the change.
    index.upsert(auto("a0000", REGISTRY, enabled=False))
    index.remove("a0001")
    assert built == [2000]
    after = ids(index, make_event())
    assert "a0000" not in after
    assert len(after) == 1998
    assert built == [2000, 1998]
    assert "a0001" not in after


def test_candidates_do_not_include_other_scopes() -> None:
    """With many automations in other scopes, an event's candidates are only its own."""
    index = AutomationIndex(
        auto(f"p{i}", {"type": "project", "entity": "acme", "project": f"proj-{i}"})
        for i in range(500)
    )
    index.upsert(auto("mine", REGISTRY))
    assert [c.id for c in index.candidates(make_event())] == ["mine"]


def test_compiled_automation_from_unvalidated_model_reports_filter_error() -> None:
    """Compiling an automation built without validation still refuses a bad filter."""
    bad = make_automation().model_copy(update={"filter": {"nope": 1}})
    with pytest.raises(InvalidAutomationError) as info:
        CompiledAutomation(bad)
    assert info.value.errors[0][0] == "filter.nope"


def test_explain_project_scope_vs_registry_event() -> None:
    """explain says a project scope does not see a registry event."""
    result = explain(auto("p", PROJECT), make_event())
    assert not result.matched
    assert any(
        "scope is project 'acme/vision' but the event is a registry event (registry 'model')" in r
        for r in result.reasons
    )


def test_explain_registry_scope_vs_project_event() -> None:
    """explain says a registry scope does not see a project event."""
    result = explain(auto("r", REGISTRY), project_event())
    assert result.reasons == [
        "scope is registry 'model' but the event is a project event (no registry; project 'vision')"
    ]


def test_explain_field_by_field() -> None:
    """explain names each differing scope field, the event type and the filter."""
    automation = auto(
        "c", PROJECT_COLLECTION, event="CREATE_ARTIFACT", filter={"version": {"$gt": 5}}
    )
    event = project_event(entity="other", project="nlp", artifact={"collection": "cifar"})
    reasons = explain(automation, event).reasons
    assert (
        "event type is ADD_ARTIFACT_ALIAS but the automation listens for CREATE_ARTIFACT" in reasons
    )
    assert "scope entity is 'acme' but the event's entity is 'other'" in reasons
    assert "scope project is 'vision' but the event's project is 'nlp'" in reasons
    assert "scope collection is 'mnist' but the event's collection is 'cifar'" in reasons
    assert "filter.version: version is 3, which fails $gt 5" in reasons


def test_explain_registered_model_scopes() -> None:
    """explain covers registered-model scopes against project and registry events."""
    reasons = explain(auto("rc", REGISTRY_COLLECTION), project_event()).reasons
    assert reasons == [
        "scope is collection 'mnist-classifier' of registry 'model' but the event is a "
        "project event (no registry; project 'vision')"
    ]
    reasons = explain(auto("pc", PROJECT_COLLECTION), make_event()).reasons
    assert reasons == [
        "scope is collection 'mnist' of project 'vision' but the event is a registry event "
        "(registry 'model')"
    ]
    reasons = explain(auto("rc", REGISTRY_COLLECTION), make_event(registry="dataset")).reasons
    assert reasons == ["scope registry is 'model' but the event's registry is 'dataset'"]


def test_explain_disabled_and_matched() -> None:
    """explain reports a disabled automation, and an empty list when it fires."""
    assert explain(auto("d", REGISTRY, enabled=False), make_event()).reasons == [
        "automation is disabled"
    ]
    result = explain(auto("ok", REGISTRY), make_event())
    assert result.matched
    assert result.reasons == []
    assert result.automation_id == "ok"


SCOPES = [REGISTRY, PROJECT, PROJECT_COLLECTION, REGISTRY_COLLECTION]
EVENTS = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT"]),
        "entity": st.sampled_from(["acme", "other"]),
        "project": st.sampled_from(["vision", "wandb-registry-model"]),
        "registry": st.sampled_from([None, "model", "dataset"]),
        "artifact": st.fixed_dictionaries(
            {
                "collection": st.sampled_from(["mnist", "mnist-classifier"]),
                "version": st.integers(0, 9),
            }
        ),
        "alias": st.sampled_from(["production", "staging"]),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    EVENTS,
    st.lists(
        st.tuples(
            st.sampled_from(range(len(SCOPES))),
            st.booleans(),
            st.sampled_from(["ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT"]),
            st.sampled_from([None, {"alias": "production"}, {"version": {"$gte": 5}}]),
        ),
        max_size=8,
    ),
)
def test_explain_agrees_with_the_index(event_data: dict[str, Any], specs: list[Any]) -> None:
    """For any event and automations, explain().matched is exactly index membership."""
    automations = []
    for i, (scope_index, enabled, event_type, spec) in enumerate(specs):
        scope = SCOPES[scope_index]
        if event_type == "CREATE_ARTIFACT" and scope["type"] != "artifact_collection":
            continue
        automations.append(auto(f"a{i}", scope, enabled=enabled, event=event_type, filter=spec))
    index = AutomationIndex(automations)
    event = make_event(**event_data)
    matched = set(ids(index, event))
    for automation in automations:
        assert explain(automation, event).matched is (automation.id in matched)
        compiled = index.get(automation.id)
        assert compiled is not None
        assert compiled.matches(event) is (automation.id in matched)


# Filters on one crowded scope, with and without guards: the guard index must agree
# with evaluating every filter, whatever the event.
GUARDED_FILTERS = [
    None,
    {"alias": "production"},
    {"alias": {"$in": ["staging", "production"]}},
    {"alias": {"$regex": "^prod"}},
    {"alias": {"$regex": "^stag?"}},
    {"alias": {"$regex": "^prod", "$options": "i"}},
    {"alias": {"$regex": "prod|^x"}},
    {"$or": [{"alias": "best"}, {"alias": {"$regex": "^prod"}}]},
    {"$or": [{"alias": "best"}, {"collection": "mnist"}]},
    {"$and": [{"collection": "mnist-classifier"}, {"version": {"$gte": 3}}]},
    {"tags": {"$all": ["baseline", "candidate"]}},
    {"tags": {"$in": ["candidate", "baseline"]}},
    {"aliases": "latest"},
    {"metadata.framework": "torch"},
    {"metadata.framework": {"$in": ["jax", "torch"]}, "type": "model"},
    {"author": {"$ne": "alice"}},
    {"$nor": [{"alias": "production"}]},
    {"alias": {"$not": {"$eq": "production"}}},
    {"version": {"$gt": 2}},
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(GUARDED_FILTERS))), min_size=9, max_size=40),
    st.fixed_dictionaries(
        {
            "alias": st.sampled_from(["production", "Production", "prod-eu", "staging", "sta"]),
            "author": st.sampled_from(["alice", "bob"]),
            "artifact": st.fixed_dictionaries(
                {
                    "collection": st.sampled_from(["mnist", "mnist-classifier"]),
                    "version": st.integers(0, 5),
                    "aliases": st.lists(st.sampled_from(["latest", "production", "v1"])),
                    "tags": st.lists(st.sampled_from(["baseline", "candidate", "gpu"])),
                    "metadata": st.fixed_dictionaries(
                        {"framework": st.sampled_from(["torch", "jax", ["torch", "onnx"], 3])}
                    ),
                }
            ),
        }
    ),
)
def test_guard_index_agrees_with_every_filter(picks: list[int], event_data: dict[str, Any]) -> None:
    """A crowded scope's guard index returns exactly the automations whose filter matches."""
    automations = [
        auto(f"a{i:03d}", REGISTRY, filter=GUARDED_FILTERS[pick]) for i, pick in enumerate(picks)
    ]
    index = AutomationIndex(automations)
    event = make_event(**event_data)
    expected = [a.id for a in automations if CompiledAutomation(a).matches(event)]
    assert ids(index, event) == expected
