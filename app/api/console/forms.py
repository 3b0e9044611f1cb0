"""The console's automation form and YAML editor, to and from the API's JSON.

The form's inputs are named by the API's field paths (`scope.entity`), except the
action's, which are named per action type (`webhook.url`) because two types share a
field name (`payload`); the API's error for `action.url` is shown at the input of
the chosen type. Nothing is validated here beyond reading JSON and YAML: the
automation goes to the API's own validation (app.api.validation) as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from app.api.problems import ApiError
from app.serialization import JSONDecodeError, dumps_str, loads

__all__ = [
    "ACTION_FIELDS",
    "JSON_FIELDS",
    "SCOPE_FIELDS",
    "automation_from_form",
    "automation_from_yaml",
    "form_from_automation",
    "yaml_line",
    "yaml_of",
]

SCOPE_FIELDS = ("entity", "project", "registry", "collection")
# Per action type, its fields in form order (config, headers: JSON objects).
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "payload", "headers", "secret", "access_token"),
    "notification": ("channel", "title", "message", "severity"),
    "queue_job": ("queue", "job", "config"),
    "kafka": ("topic", "payload"),
    "no_op": (),
}
# Fields typed as JSON text in the form (the API's field path).
JSON_FIELDS = frozenset({"filter", "action.headers", "action.config"})


def _json_field(path: str, text: str, errors: list[tuple[str, str]]) -> Any:
    try:
        value = loads(text)
    except JSONDecodeError as exc:
        errors.append((path, f"not valid JSON: {exc}"))
        return None
    if not isinstance(value, dict):
        errors.append((path, "must be a JSON object"))
    return value


def automation_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The automation a submitted form describes; raises ApiError 422 on unreadable JSON."""
    errors: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    for name in ("id", "name", "description", "event"):
        value = form.get(name, "").strip()
        if value:
            out[name] = value
    out["enabled"] = form.get("enabled") == "true"
    scope: dict[str, Any] = {"type": form.get("scope.type", "")}
    for name in SCOPE_FIELDS:
        value = form.get(f"scope.{name}", "").strip()
        if value:
            scope[name] = value
    out["scope"] = scope
    filter_text = form.get("filter", "").strip()
    if filter_text:
        out["filter"] = _json_field("filter", filter_text, errors)
    action_type = form.get("action.type", "")
    action: dict[str, Any] = {"type": action_type}
    for name in ACTION_FIELDS.get(action_type, ()):
        value = form.get(f"{action_type}.{name}", "")
        if not value.strip():
            continue
        path = f"action.{name}"
        action[name] = _json_field(path, value, errors) if path in JSON_FIELDS else value
    out["action"] = action
    if errors:
        raise ApiError(422, "invalid automation", errors=errors)
    return out


def form_from_automation(automation: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a stored automation (what the edit page shows)."""
    values: dict[str, str] = {
        name: str(automation.get(name) or "") for name in ("id", "name", "description", "event")
    }
    values["enabled"] = "true" if automation.get("enabled", True) else ""
    scope = automation.get("scope") or {}
    values["scope.type"] = str(scope.get("type", ""))
    for name in SCOPE_FIELDS:
        values[f"scope.{name}"] = str(scope.get(name) or "")
    values["filter"] = _pretty(automation.get("filter"))
    action = automation.get("action") or {}
    action_type = str(action.get("type", ""))
    values["action.type"] = action_type
    for name in ACTION_FIELDS.get(action_type, ()):
        value = action.get(name)
        text = _pretty(value) if f"action.{name}" in JSON_FIELDS else str(value or "")
        values[f"{action_type}.{name}"] = text
    return values


def _pretty(value: Any) -> str:
    return "" if value is None else dumps_str(value, indent=True)


def yaml_of(automation: Mapping[str, Any]) -> str:
    """An automation as the YAML editor shows it (the file format of `automations apply`)."""
    return yaml.safe_dump(dict(automation), sort_keys=False, allow_unicode=True, width=100)


def automation_from_yaml(text: str) -> Any:
    """The one YAML document of the editor; raises ApiError 422 at field `yaml`."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ApiError(
            422, "invalid automation", errors=[("yaml", f"not valid YAML: {exc}")]
        ) from None
    if len(documents) != 1:
        raise ApiError(
            422,
            "invalid automation",
            errors=[("yaml", f"expected one YAML document, found {len(documents)}")],
        )
    return documents[0]


def yaml_line(text: str, path: str) -> int | None:
    """The 1-based line of the key a dotted field path names in YAML text, if present."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in path.split(".") if path else ():
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                line, node = key.start_mark.line + 1, value
                break
        else:
            break
    return line
