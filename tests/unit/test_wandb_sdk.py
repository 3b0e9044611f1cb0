"""W&B SDK compatibility: automations built with `wandb.automations` fire as written.

Each automation is built with the SDK's own classes, serialized by the SDK, read by
`automation_from_wandb`, and run through the workers' pipeline against events; the
firings are checked against what the SDK's definition means.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from wandb.automations import (
    ArtifactEvent,
    DoNothing,
    EventType,
    OnAddArtifactAlias,
    OnAddArtifactTag,
    OnAddCollectionTag,
    OnCreateArtifact,
    OnLinkArtifact,
    OnRemoveArtifactTag,
    OnRunMetric,
    OnRunState,
    OnUnlinkArtifact,
    RunEvent,
    SendNotification,
    SendWebhook,
)
from wandb.automations import Automation as WandbAutomation
from wandb.automations.scopes import ArtifactCollectionScope, ProjectScope, TeamScope

from app.contract.automations import (
    DEFAULT_NOTIFICATION_TITLE,
    DEFAULT_RUN_METRIC_PAYLOAD,
    DEFAULT_RUN_STATE_TITLE,
    DEFAULT_WEBHOOK_PAYLOAD,
    Automation,
    parse_automation,
)
from app.contract.wandb_sdk import automation_from_wandb
from app.core.matching import AutomationIndex, Guard, filter_guard
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.errors import InvalidAutomationError
from app.serialization import dumps, loads
from tests.factories import ACTION_TOPICS, NOW, automation_dict, event_dict

HOOK = "V2ViaG9va0ludGVncmF0aW9uOjE="
SLACK = "U2xhY2tJbnRlZ3JhdGlvbjox"
INTEGRATIONS = {
    HOOK: {"url": "https://ci.example.com/hooks/w", "secret": "HOOK_SECRET"},
    SLACK: {"channel": "SLACK_ML"},
}

LINK_SOURCE = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 1}

VISION = ProjectScope(id="UHJvamVjdDox", name="vision")
REGISTRY = ProjectScope.model_validate(
    {"__typename": "Project", "id": "UHJvamVjdDoy", "name": "wandb-registry-model"}
)
ACME = TeamScope(id="RW50aXR5OjE=", name="acme")
_COLLECTION = TypeAdapter(ArtifactCollectionScope)
DATASETS = _COLLECTION.validate_python(
    {"__typename": "ArtifactSequence", "id": "QXJ0OjE=", "name": "mnist-dataset"}
)
CLASSIFIER = _COLLECTION.validate_python(
    {"__typename": "ArtifactPortfolio", "id": "QXJ0OjI=", "name": "mnist-classifier"}
)


def from_sdk(new_automation: Any, id: str = "sdk") -> Automation:
    """The SDK's serialization of an automation, read as a Hookstream automation."""
    return automation_from_wandb(
        new_automation.model_dump(mode="json"),
        id=id,
        entity="acme",
        project="vision",
        registry="model",
        integrations=INTEGRATIONS,
    )


def registry_event(**overrides: Any) -> dict[str, Any]:
    """A registry event of the model registry (mnist-classifier)."""
    return event_dict(**overrides)


def vision_event(**overrides: Any) -> dict[str, Any]:
    """A project event of acme/vision (mnist-dataset)."""
    artifact = {"collection": "mnist-dataset", "type": "dataset", **overrides.pop("artifact", {})}
    return event_dict(project="vision", registry=None, artifact=artifact, **overrides)


def fired(automations: list[Automation], events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(event id, automation id) of every match, through the workers' pipeline."""
    pipeline = Pipeline(AutomationIndex(automations), ACTION_TOPICS, 1 << 20, clock=lambda: NOW)
    aliases = MemoryAliasStore()
    out: list[tuple[str, str]] = []
    for number, event in enumerate(events):
        result = pipeline.process(dumps(event), aliases=aliases, source=SourceInfo("t", 0, number))
        assert result.reason is None, result.reason
        out.extend((event["event_id"], c.id) for c in result.matched)
    return out


def jobs(automation: Automation, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The action jobs one event yields for one automation."""
    pipeline = Pipeline(AutomationIndex([automation]), ACTION_TOPICS, 1 << 20, clock=lambda: NOW)
    result = pipeline.process(dumps(event), aliases=MemoryAliasStore(), source=SourceInfo("t"))
    return [loads(o.value) for o in result.outbounds]


def test_documented_link_example_fires_on_the_linked_alias() -> None:
    """The SDK docs' OnLinkArtifact(filter=alias.eq("prod")) fires when linked with prod."""
    sdk = OnLinkArtifact(scope=CLASSIFIER, filter=ArtifactEvent.alias.eq("prod")) >> SendWebhook(
        integration_id=HOOK
    )
    automation = from_sdk(sdk)
    assert automation.event.value == "LINK_ARTIFACT"
    assert automation.filter == {"$or": [{"$and": [{"alias": {"$eq": "prod"}}]}]}
    linked = {"event_type": "LINK_MODEL", "source": LINK_SOURCE}
    events = [
        registry_event(event_id="prod", artifact={"aliases": ["latest", "prod"]}, **linked),
        registry_event(event_id="plain", artifact={"aliases": ["latest"]}, **linked),
        registry_event(event_id="alias-event", event_type="ADD_ARTIFACT_ALIAS", alias="prod"),
    ]
    assert fired([automation], events) == [("prod", "sdk")]


def test_webhook_without_payload_sends_the_default_payload() -> None:
    """SendWebhook without request_payload: the documented default payload, rendered."""
    automation = from_sdk(OnAddArtifactAlias(scope=REGISTRY) >> SendWebhook(integration_id=HOOK))
    assert automation.filter == {"$or": [{"$and": []}]}
    assert automation.action.type == "webhook"
    assert automation.action.payload == DEFAULT_WEBHOOK_PAYLOAD
    (job,) = jobs(automation, registry_event())
    payload = loads(job["action"]["payload"])
    assert payload["artifact_version_string"] == "acme/wandb-registry-model/mnist-classifier:v3"
    assert payload["alias"] == "production"
    assert job["action"]["secret"] == "HOOK_SECRET"


def test_webhook_payload_is_the_sdk_json_text() -> None:
    """The SDK's request_payload (a dict, sent as JSON text) renders its variables."""
    action = SendWebhook(
        integration_id=HOOK, request_payload={"model": "${artifact_version_string}", "n": 1}
    )
    automation = from_sdk(OnAddArtifactAlias(scope=REGISTRY) >> action)
    (job,) = jobs(automation, registry_event())
    assert loads(job["action"]["payload"]) == {
        "model": "acme/wandb-registry-model/mnist-classifier:v3",
        "n": 1,
    }


def test_notification_defaults_and_tag_field_on_an_entity_scope() -> None:
    """A team-scoped tag automation with an untitled notification fires on the tag only."""
    sdk = OnAddArtifactTag(
        scope=ACME, filter=ArtifactEvent.tag.in_(["candidate"])
    ) >> SendNotification(integration_id=SLACK, message="${tag} on ${artifact_version_string}")
    automation = from_sdk(sdk)
    assert automation.scope.type == "entity"
    assert automation.action.type == "notification"
    assert automation.action.title == DEFAULT_NOTIFICATION_TITLE
    assert automation.action.severity == "INFO"
    tagged = {"event_type": "ADD_ARTIFACT_TAG", "alias": None}
    events = [
        registry_event(event_id="registry", tag="candidate", **tagged),
        vision_event(event_id="project", tag="candidate", **tagged),
        vision_event(event_id="other-tag", tag="baseline", **tagged),
        vision_event(event_id="other-entity", entity="globex", tag="candidate", **tagged),
    ]
    assert fired([automation], events) == [("registry", "sdk"), ("project", "sdk")]
    (job,) = jobs(automation, events[1])
    assert job["action"]["title"] == "ADD_ARTIFACT_TAG on acme/vision/mnist-dataset:v3"
    assert job["action"]["message"] == "candidate on acme/vision/mnist-dataset:v3"


def test_negated_tag_and_regex_alias_filters() -> None:
    """`~tag.eq(x)` on REMOVE_ARTIFACT_TAG and alias regex on UNLINK_ARTIFACT honour the SDK."""
    untag = from_sdk(
        OnRemoveArtifactTag(scope=VISION, filter=~ArtifactEvent.tag.eq("keep"))
        >> SendWebhook(integration_id=HOOK),
        id="untag",
    )
    unlink = from_sdk(
        OnUnlinkArtifact(scope=REGISTRY, filter=ArtifactEvent.alias.matches_regex("^prod"))
        >> DoNothing(),
        id="unlink",
    )
    removed = {"event_type": "REMOVE_ARTIFACT_TAG", "alias": None}
    unlinked = {"event_type": "UNLINK_ARTIFACT", "alias": None}
    events = [
        vision_event(event_id="drop-raw", tag="raw", **removed),
        vision_event(event_id="drop-keep", tag="keep", **removed),
        registry_event(event_id="unlink-prod", artifact={"aliases": ["production"]}, **unlinked),
        registry_event(event_id="unlink-dev", artifact={"aliases": ["dev"]}, **unlinked),
    ]
    assert fired([untag, unlink], events) == [("drop-raw", "untag"), ("unlink-prod", "unlink")]


def test_or_of_aliases_on_create_artifact_and_collection_scope() -> None:
    """`alias.eq(a) | alias.eq(b)` on OnCreateArtifact matches the version's aliases."""
    automation = from_sdk(
        OnCreateArtifact(
            scope=DATASETS, filter=ArtifactEvent.alias.eq("a") | ArtifactEvent.alias.eq("b")
        )
        >> DoNothing()
    )
    assert automation.scope.model_dump() == {
        "type": "artifact_collection",
        "entity": "acme",
        "project": "vision",
        "collection": "mnist-dataset",
        "registry": None,
    }
    created = {"event_type": "CREATE_ARTIFACT", "alias": None}
    events = [
        vision_event(event_id="with-b", artifact={"aliases": ["latest", "b"]}, **created),
        vision_event(event_id="without", artifact={"aliases": ["latest"]}, **created),
    ]
    assert fired([automation], events) == [("with-b", "sdk")]


@pytest.mark.parametrize("name", ["LINK_MODEL", "LINK_ARTIFACT", "link_model"])
def test_link_model_and_link_artifact_are_one_event(name: str) -> None:
    """An automation on LINK_MODEL or LINK_ARTIFACT (any case) fires on events of either."""
    automation = parse_automation(automation_dict(event=name))
    events = [
        registry_event(event_id=kind, event_type=kind, alias=None, source=LINK_SOURCE)
        for kind in ("LINK_MODEL", "LINK_ARTIFACT")
    ]
    assert automation.event.value == "LINK_ARTIFACT"
    assert fired([automation], events) == [
        ("LINK_MODEL", "deploy-on-production"),
        ("LINK_ARTIFACT", "deploy-on-production"),
    ]


def test_filter_as_json_text_as_the_api_returns_it() -> None:
    """A filter given as JSON text, bare or in a saved automation's wrapper, is the object."""
    serialized = OnAddArtifactAlias(
        scope=REGISTRY, filter=ArtifactEvent.alias.eq("production")
    ).model_dump(mode="json")["filter"]
    assert isinstance(serialized, str)
    bare = parse_automation(automation_dict(filter=serialized))
    saved = automation_from_wandb(
        {
            "name": "saved",
            "event": {
                "eventType": "ADD_ARTIFACT_ALIAS",
                "filter": dumps({"filter": serialized}).decode(),
            },
            "scope": {"__typename": "Project", "name": "wandb-registry-model"},
            "action": {"action_type": "NO_OP", "no_op": True},
        },
        id="saved",
        entity="acme",
    )
    expected = {"$or": [{"$and": [{"alias": {"$eq": "production"}}]}]}
    assert bare.filter == expected
    assert saved.filter == expected
    assert fired([bare, saved], [registry_event()]) == [
        ("evt-1", "deploy-on-production"),
        ("evt-1", "saved"),
    ]


@pytest.mark.parametrize(
    ("sdk", "path", "reason"),
    [
        (
            OnAddArtifactAlias(scope=REGISTRY, filter={"alias": {"$elemMatch": {"x": 1}}}),
            "filter.$or.0.$and.0.alias.$elemMatch",
            "unknown operator $elemMatch",
        ),
        (
            OnLinkArtifact(scope=REGISTRY, filter=RunEvent.name.contains("x")),
            "filter.$or.0.$and.0.display_name",
            "unknown field 'display_name'",
        ),
        (
            OnAddArtifactAlias(scope=REGISTRY, filter=ArtifactEvent.alias.matches_regex("(?=p)")),
            "filter.$or.0.$and.0.alias.$regex",
            "refused by RE2",
        ),
        (
            OnAddArtifactAlias(scope=REGISTRY, filter={"alias": {"$regex": "p", "$options": "x"}}),
            "filter.$or.0.$and.0.alias.$options",
            "only i, m, s",
        ),
        (OnAddCollectionTag(scope=REGISTRY), "event", "ADD_COLLECTION_TAG"),
        (OnCreateArtifact(scope=DATASETS), "action.integration_id", "no Hookstream target"),
    ],
)
def test_filters_hookstream_cannot_honour_are_refused(sdk: Any, path: str, reason: str) -> None:
    """An SDK definition Hookstream cannot honour is refused with its path and operator."""
    action = SendWebhook(integration_id="unknown") if path.startswith("action") else DoNothing()
    with pytest.raises(InvalidAutomationError) as info:
        from_sdk(sdk >> action)
    assert any(p == path and reason in r for p, r in info.value.errors), info.value.errors


@pytest.mark.parametrize(
    ("sdk_event", "event"),
    [
        (
            OnAddArtifactTag(scope=ACME, filter=ArtifactEvent.tag.eq("candidate")),
            vision_event(event_type="ADD_ARTIFACT_TAG", alias=None, tag="candidate"),
        ),
        (
            OnRemoveArtifactTag(scope=VISION, filter=ArtifactEvent.tag.eq("raw")),
            vision_event(event_type="REMOVE_ARTIFACT_TAG", alias=None, tag="raw"),
        ),
        (
            OnUnlinkArtifact(scope=ACME, filter=ArtifactEvent.alias.eq("production")),
            registry_event(event_type="UNLINK_ARTIFACT", alias=None),
        ),
        (
            OnLinkArtifact(scope=REGISTRY, filter=ArtifactEvent.tag.eq("baseline")),
            registry_event(
                event_type="LINK_MODEL",
                alias=None,
                source=LINK_SOURCE,
            ),
        ),
        (
            OnAddArtifactAlias(scope=ACME, filter=ArtifactEvent.alias.eq("production")),
            registry_event(),
        ),
    ],
)
def test_round_trip_through_hookstream_and_back(sdk_event: Any, event: dict[str, Any]) -> None:
    """SDK -> Hookstream -> SDK keeps event type and filter; the automation fires."""
    automation = from_sdk(sdk_event >> DoNothing())
    assert EventType[automation.event.value] is sdk_event.event_type
    again = type(sdk_event)(scope=sdk_event.scope, filter=automation.filter)
    assert again.model_dump(mode="json") == sdk_event.model_dump(mode="json")
    assert fired([automation], [event]) == [(event["event_id"], "sdk")]


def test_a_saved_automation_as_the_api_returns_it() -> None:
    """The SDK's saved `Automation` (parsed from W&B's API response) reads and fires."""
    wrapped = dumps({"filter": dumps({"$or": [{"$and": [{"alias": {"$eq": "prod"}}]}]}).decode()})
    saved = WandbAutomation.model_validate(
        {
            "id": "VHJpZ2dlcjox",
            "createdAt": "2026-11-26T10:00:00Z",
            "name": "Deploy prod links",
            "description": None,
            "enabled": True,
            "event": {
                "__typename": "FilterEventTriggeringCondition",
                "eventType": "LINK_MODEL",
                "filter": wrapped.decode(),
            },
            "scope": {
                "__typename": "Project",
                "id": "UHJvamVjdDoy",
                "name": "wandb-registry-model",
                "isRegistry": True,
                "full_name": "wandb-registry-model",
            },
            "action": {
                "__typename": "GenericWebhookTriggeredAction",
                "integration": {"__typename": "GenericWebhookIntegration", "id": HOOK},
                "requestPayload": dumps({"m": "${artifact_version_string}"}).decode(),
            },
        }
    )
    automation = automation_from_wandb(
        saved.model_dump(mode="json"), id="saved", entity="acme", integrations=INTEGRATIONS
    )
    assert automation.name == "Deploy prod links"
    assert automation.scope.model_dump() == {
        "type": "registry",
        "entity": "acme",
        "registry": "model",
    }
    event = registry_event(
        event_type="LINK_MODEL", alias=None, source=LINK_SOURCE, artifact={"aliases": ["prod"]}
    )
    (job,) = jobs(automation, event)
    assert loads(job["action"]["payload"]) == {"m": "acme/wandb-registry-model/mnist-classifier:v3"}
    assert job["action"]["url"] == INTEGRATIONS[HOOK]["url"]


def test_sdk_wrapped_filters_keep_their_index_guard() -> None:
    """The {"$or": [{"$and": [...]}]} wrapper still gives the index its guard on alias/tag,
    so many SDK automations in one scope are looked up, not scanned."""
    alias = OnAddArtifactAlias(scope=REGISTRY, filter=ArtifactEvent.alias.eq("prod"))
    tags = OnAddArtifactTag(scope=ACME, filter=ArtifactEvent.tag.in_(["a", "b"]))
    assert filter_guard(from_sdk(alias >> DoNothing()).filter) == Guard(
        "alias", frozenset({"prod"})
    )
    assert filter_guard(from_sdk(tags >> DoNothing()).filter) == Guard("tag", frozenset({"a", "b"}))
    assert filter_guard(from_sdk(OnAddArtifactAlias(scope=REGISTRY) >> DoNothing()).filter) is None


# Property: random SDK filter expressions on `alias` and `tag` fire exactly where an
# independent reading of the contract says they should.

WORDS = ("prod", "staging", "latest", "candidate", "p")
SDK_EVENTS: dict[str, Any] = {
    "ADD_ARTIFACT_ALIAS": OnAddArtifactAlias,
    "ADD_ARTIFACT_TAG": OnAddArtifactTag,
    "LINK_ARTIFACT": OnLinkArtifact,
    "UNLINK_ARTIFACT": OnUnlinkArtifact,
}
Expr = tuple[Any, ...]

_word = st.sampled_from(WORDS)
_field = st.sampled_from(("alias", "tag"))
_words = st.lists(_word, min_size=1, max_size=3, unique=True)
_leaf = st.one_of(
    st.tuples(st.sampled_from(("eq", "ne", "contains")), _field, _word),
    st.tuples(st.sampled_from(("in", "nin")), _field, _words),
)
EXPRESSIONS = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(("and", "or")), inner, inner), st.tuples(st.just("not"), inner)
    ),
    max_leaves=6,
)


def sdk_filter(expr: Expr) -> Any:
    """The expression built with the SDK's ArtifactEvent fields and operators."""
    kind = expr[0]
    if kind == "and":
        return sdk_filter(expr[1]) & sdk_filter(expr[2])
    if kind == "or":
        return sdk_filter(expr[1]) | sdk_filter(expr[2])
    if kind == "not":
        return ~sdk_filter(expr[1])
    field = getattr(ArtifactEvent, expr[1])
    method = {"eq": "eq", "ne": "ne", "contains": "contains", "in": "in_", "nin": "not_in"}[kind]
    return getattr(field, method)(expr[2])


def field_value(event: dict[str, Any], field: str) -> Any:
    """The contract's table: the event's own alias or tag, else the version's list."""
    own = {"alias": ("ADD_ARTIFACT_ALIAS",), "tag": ("ADD_ARTIFACT_TAG",)}[field]
    if event["event_type"] in own:
        return event[field]
    return event["artifact"]["aliases" if field == "alias" else "tags"]


def holds(expr: Expr, event: dict[str, Any]) -> bool:
    """MongoDB's reading of the expression (a list matches when any element does)."""
    kind = expr[0]
    if kind == "and":
        return holds(expr[1], event) and holds(expr[2], event)
    if kind == "or":
        return holds(expr[1], event) or holds(expr[2], event)
    if kind == "not":
        return not holds(expr[1], event)
    value = field_value(event, expr[1])
    values = value if isinstance(value, list) else [value]
    if kind == "contains":
        return any(expr[2] in v for v in values)
    wanted = [expr[2]] if kind in ("eq", "ne") else expr[2]
    found = any(v in wanted for v in values)
    return found if kind in ("eq", "in") else not found


@given(
    expr=EXPRESSIONS,
    event_type=st.sampled_from(sorted(SDK_EVENTS)),
    versions=st.lists(st.tuples(_word, _words, _words), min_size=1, max_size=4),
)
@settings(max_examples=150, deadline=None)
def test_random_sdk_filters_fire_where_the_contract_says(
    expr: Expr, event_type: str, versions: list[tuple[str, list[str], list[str]]]
) -> None:
    """SDK-built alias/tag filters, serialized by the SDK, fire on exactly the events an
    independent evaluation of the expression selects."""
    automation = from_sdk(
        SDK_EVENTS[event_type](scope=REGISTRY, filter=sdk_filter(expr)) >> DoNothing()
    )
    events = []
    for number, (word, aliases, tags) in enumerate(versions):
        fields: dict[str, Any] = {"event_id": f"e{number}", "event_type": event_type}
        fields["alias"] = word if event_type == "ADD_ARTIFACT_ALIAS" else None
        fields["tag"] = word if event_type == "ADD_ARTIFACT_TAG" else None
        if "LINK" in event_type:
            fields["source"] = LINK_SOURCE
        events.append(registry_event(artifact={"aliases": aliases, "tags": tags}, **fields))
    expected = [(e["event_id"], "sdk") for e in events if holds(expr, e)]
    assert fired([automation], events) == expected


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sdk_run_automations_without_payload_or_title_get_the_run_defaults() -> None:
    """OnRunMetric >> SendWebhook / OnRunState >> SendNotification: the run defaults."""
    metric = RunEvent.metric("loss").avg(3) < 0.2
    # The SDK types event_type as required; its validator fills it (as in test_run_sdk).
    on_metric: Any = OnRunMetric
    hook = from_sdk(on_metric(scope=ACME, filter=metric) >> SendWebhook(integration_id=HOOK))
    assert hook.action.type == "webhook"
    assert hook.action.payload == DEFAULT_RUN_METRIC_PAYLOAD
    state = OnRunState(scope=ACME, filter=RunEvent.state.in_(["FINISHED"]))
    note = from_sdk(state >> SendNotification(integration_id=SLACK, message="done"))
    assert note.action.type == "notification"
    assert note.action.title == DEFAULT_RUN_STATE_TITLE
