"""Automations written with the W&B SDK (``wandb.automations``), read as Hookstream's.

``automation_from_wandb`` takes what the SDK serializes, ``NewAutomation.model_dump(
mode="json")`` (``event`` with ``event_type``, ``scope`` and the filter as JSON text;
``action`` with ``action_type``), or a saved automation as W&B's API returns it (the
scope beside the event, the filter wrapped once more as ``{"filter": "<JSON>"}``), and
gives the Hookstream automation that means the same. The filter is kept as the SDK
wrote it (``{"$or": [{"$and": [...]}]}``): Hookstream's filter language reads it as is.

W&B keeps URLs, secrets and Slack channels on integrations, named by id; Hookstream
automations carry them, so the caller maps each integration id to the fields it stands
for (``url``, ``secret``, ``access_token`` of a webhook; ``channel`` of a notification).
W&B scopes name a project or collection but not always its parents: the caller gives
the ``project`` of an artifact sequence and the ``registry`` of an artifact portfolio.
Anything Hookstream cannot honour (an action type it lacks, an unknown event type, a
filter field or operator it does not know) is refused with the path, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from app.contract.automations import Automation, parse_automation
from app.errors import InvalidAutomationError
from app.serialization import JSONDecodeError, dumps, loads

__all__ = ["REGISTRY_PROJECT_PREFIX", "automation_from_wandb", "wandb_filter"]

#: W&B names a registry's project ``wandb-registry-<registry>``.
REGISTRY_PROJECT_PREFIX: Final = "wandb-registry-"

Integrations = Mapping[str, Mapping[str, Any]]


def _refuse(path: str, reason: str) -> InvalidAutomationError:
    return InvalidAutomationError([(path, reason)])


def _text(value: Any, path: str) -> Any:
    """A value the SDK serialized as JSON text, decoded (anything else as it is)."""
    if not isinstance(value, str):
        return value
    try:
        return loads(value)
    except JSONDecodeError as exc:
        raise _refuse(path, f"not valid JSON: {exc}") from None


def wandb_filter(value: Any) -> dict[str, Any] | None:
    """The filter of an SDK event: JSON text or an object; a saved one's wrapper removed."""
    decoded = _text(value, "filter")
    if isinstance(decoded, Mapping) and set(decoded) == {"filter"}:
        # Saved automations (the API's FilterEventTriggeringCondition) wrap it once more.
        decoded = _text(decoded["filter"], "filter")
    if decoded is None:
        return None
    if not isinstance(decoded, Mapping):
        raise _refuse("filter", "a filter must be a JSON object")
    return dict(decoded)


def _scope(
    scope: Mapping[str, Any], entity: str, project: str | None, registry: str | None
) -> dict[str, Any]:
    kind = scope.get("__typename") or scope.get("typename__")
    name = scope.get("name")
    if not isinstance(name, str) or not name:
        raise _refuse("scope.name", "a W&B scope needs a name")
    if kind == "Entity":
        return {"type": "entity", "entity": name}
    if kind == "Project":
        if name.startswith(REGISTRY_PROJECT_PREFIX):
            return {
                "type": "registry",
                "entity": entity,
                "registry": name[len(REGISTRY_PROJECT_PREFIX) :],
            }
        return {"type": "project", "entity": entity, "project": name}
    # A sequence lives in a project, a portfolio in a registry: the caller names it.
    parents = {
        "ArtifactSequence": ("project", project),
        "ArtifactPortfolio": ("registry", registry),
    }
    if kind in parents:
        parent, value = parents[kind]
        if value is None:
            raise _refuse("scope", f"collection {name!r} (an {kind}) needs its {parent}")
        return {"type": "artifact_collection", "entity": entity, parent: value, "collection": name}
    raise _refuse("scope.__typename", f"unknown W&B scope type {kind!r}")


def _integration(action: Mapping[str, Any], integrations: Integrations) -> Mapping[str, Any]:
    integration = action.get("integration")
    ident = action.get("integration_id") or action.get("integrationId")
    if ident is None and isinstance(integration, Mapping):
        ident = integration.get("id")
    found = integrations.get(str(ident)) if ident is not None else None
    if found is None:
        raise _refuse(
            "action.integration_id", f"no Hookstream target given for W&B integration {ident!r}"
        )
    return found


def _action(action: Mapping[str, Any], integrations: Integrations) -> dict[str, Any]:
    kind = str(action.get("action_type") or action.get("actionType") or "").upper()
    if kind == "NO_OP":
        return {"type": "no_op"}
    if kind == "GENERIC_WEBHOOK":
        target = _integration(action, integrations)
        out: dict[str, Any] = {"type": "webhook"}
        out.update((k, target[k]) for k in ("url", "secret", "access_token") if k in target)
        payload = action.get("request_payload", action.get("requestPayload"))
        if payload is not None:
            # The SDK sends the payload as compact JSON text; a dict is written the same way.
            out["payload"] = payload if isinstance(payload, str) else dumps(payload).decode()
        return out
    if kind == "NOTIFICATION":
        target = _integration(action, integrations)
        out = {"type": "notification", "channel": target.get("channel")}
        for field in ("title", "message", "severity"):
            if action.get(field) is not None:
                out[field] = action[field]
        return out
    raise _refuse(
        "action.action_type",
        f"W&B action type {kind or None!r} has no Hookstream equivalent; "
        "use GENERIC_WEBHOOK, NOTIFICATION or NO_OP",
    )


def automation_from_wandb(
    sdk: Mapping[str, Any],
    *,
    id: str,
    entity: str,
    project: str | None = None,
    registry: str | None = None,
    integrations: Integrations | None = None,
) -> Automation:
    """The Hookstream automation an SDK automation means; raises InvalidAutomationError."""
    event = sdk.get("event")
    if not isinstance(event, Mapping):
        raise _refuse("event", "a W&B automation needs an event")
    scope = event.get("scope", sdk.get("scope"))
    if not isinstance(scope, Mapping):
        raise _refuse("event.scope", "a W&B event needs a scope")
    action = sdk.get("action")
    if not isinstance(action, Mapping):
        raise _refuse("action", "a W&B automation needs an action")
    data: dict[str, Any] = {
        "id": id,
        "name": sdk.get("name") or id,
        "event": event.get("event_type", event.get("eventType")),
        "scope": _scope(scope, entity, project, registry),
        "filter": wandb_filter(event.get("filter")),
        "action": _action(action, integrations or {}),
    }
    if sdk.get("description") is not None:
        data["description"] = sdk["description"]
    if sdk.get("enabled") is not None:
        data["enabled"] = sdk["enabled"]
    return parse_automation(data)
