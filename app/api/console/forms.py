"""The console's automation form and YAML editor, to and from the API's JSON.

The form's inputs are named by the API's field paths (`scope.entity`), except the
action's, which are named per action type (`webhook.url`) because two types share a
field name (`payload`); the API's error for `action.url` is shown at the input of
the chosen type. A run automation's filter is split over its own inputs
(`filter.run_filter`, `filter.run_metric_filter`, `filter.run_state_filter`); what else
its filter holds stays in `filter`. An error is shown at the input whose path is the
longest prefix of the error's (`input_of`). Nothing is validated here beyond reading
JSON and YAML: the automation goes to the API's own validation (app.api.validation)
as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from app.api.problems import ApiError
from app.contract.runs import RUN_EVENT_TYPES
from app.serialization import JSONDecodeError, dumps_str, loads

__all__ = [
    "ACTION_FIELDS",
    "INPUTS",
    "JSON_FIELDS",
    "RUN_FILTER_FIELDS",
    "RUN_INPUTS",
    "SCOPE_FIELDS",
    "automation_from_form",
    "automation_from_yaml",
    "form_from_automation",
    "input_of",
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
# The keys of a run automation's filter that have their own inputs (`filter.<key>`).
RUN_FILTER_FIELDS = ("run_filter", "run_metric_filter", "run_state_filter")
# Fields typed as JSON text in the form (the API's field path).
JSON_FIELDS = frozenset(
    {"filter", "action.headers", "action.config", *(f"filter.{k}" for k in RUN_FILTER_FIELDS)}
)
# The inputs of a run automation only (shown when the event is one, or they hold text).
RUN_INPUTS = (*(f"filter.{key}" for key in RUN_FILTER_FIELDS), "cooldown_seconds")
# `run_filter` is JSON text in the SDK's JSON, an object in a hand-written one; this
# input says which, so that the form gives back what was stored.
RUN_FILTER_AS = "filter.run_filter.as"
# The API field path each error can be shown at (the scope's and action's choices
# answer for `scope` and `action`, their `type` inputs for `scope.type`, `action.type`).
INPUTS = frozenset(
    {
        "id", "name", "description", "enabled", "event", "job_format", "cooldown_seconds",
        "scope", "scope.type", *(f"scope.{name}" for name in SCOPE_FIELDS),
        "filter", *(f"filter.{key}" for key in RUN_FILTER_FIELDS),
        "action", "action.type",
        *(f"action.{name}" for names in ACTION_FIELDS.values() for name in names),
    }
)  # fmt: skip


def input_of(path: str) -> str:
    """The input an error at API field `path` is shown at: the longest prefix that is one
    (`filter.run_metric_filter.threshold_filter.threshold` -> `filter.run_metric_filter`);
    `path` itself when none is (the error is listed above the form only)."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in INPUTS:
            return prefix
    return path


def _json_field(path: str, text: str, errors: list[tuple[str, str]]) -> Any:
    try:
        value = loads(text)
    except JSONDecodeError as exc:
        errors.append((path, f"not valid JSON: {exc}"))
        return None
    if not isinstance(value, dict):
        errors.append((path, "must be a JSON object"))
    return value


def _filter_from_form(form: Mapping[str, str], errors: list[tuple[str, str]]) -> Any:
    """`filter`, with the run inputs' keys added; None when every input is empty."""
    text = form.get("filter", "").strip()
    value: Any = _json_field("filter", text, errors) if text else None
    parts: dict[str, Any] = {}
    for key in RUN_FILTER_FIELDS:
        path = f"filter.{key}"
        part = form.get(path, "").strip()
        if not part:
            continue
        read = _json_field(path, part, errors)
        # The SDK's form: run_filter stays the JSON text typed, unless stored as an object.
        as_text = key == "run_filter" and form.get(RUN_FILTER_AS, "text") != "object"
        parts[key] = part if as_text else read
        if isinstance(value, dict) and key in value:
            errors.append((path, f"given twice: here and as {key} in the filter"))
    if not parts:
        return value
    if value is None:
        return parts
    return {**value, **parts} if isinstance(value, dict) else value


def _number(path: str, text: str, errors: list[tuple[str, str]]) -> Any:
    try:
        value = loads(text)
    except JSONDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append((path, f"must be a number of seconds, not {text!r}"))
        return None
    return value


def automation_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The automation a submitted form describes; raises ApiError 422 on unreadable JSON."""
    errors: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    for name in ("id", "name", "description", "event", "job_format"):
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
    filter_value = _filter_from_form(form, errors)
    if filter_value is not None:
        out["filter"] = filter_value
    cooldown = form.get("cooldown_seconds", "").strip()
    if cooldown:
        out["cooldown_seconds"] = _number("cooldown_seconds", cooldown, errors)
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
        name: str(automation.get(name) or "")
        for name in ("id", "name", "description", "event", "job_format")
    }
    values["enabled"] = "true" if automation.get("enabled", True) else ""
    scope = automation.get("scope") or {}
    values["scope.type"] = str(scope.get("type", ""))
    for name in SCOPE_FIELDS:
        values[f"scope.{name}"] = str(scope.get(name) or "")
    values.update(_filter_values(automation))
    cooldown = automation.get("cooldown_seconds")
    values["cooldown_seconds"] = "" if cooldown is None else dumps_str(cooldown)
    action = automation.get("action") or {}
    action_type = str(action.get("type", ""))
    values["action.type"] = action_type
    for name in ACTION_FIELDS.get(action_type, ()):
        value = action.get(name)
        text = _pretty(value) if f"action.{name}" in JSON_FIELDS else str(value or "")
        values[f"{action_type}.{name}"] = text
    return values


def _filter_values(automation: Mapping[str, Any]) -> dict[str, str]:
    """The filter's inputs: a run automation's run keys each at its own, the rest at
    `filter` (the SDK's `metric_filter: null`)."""
    spec = automation.get("filter")
    values = {f"filter.{key}": "" for key in RUN_FILTER_FIELDS}
    values[RUN_FILTER_AS] = "text"
    if automation.get("event") not in RUN_EVENT_TYPES or not isinstance(spec, Mapping):
        values["filter"] = _pretty(spec)
        return values
    rest = {k: v for k, v in spec.items() if k not in RUN_FILTER_FIELDS}
    values["filter"] = _pretty(rest) if rest else ""
    for key in RUN_FILTER_FIELDS:
        if key in spec:
            part = spec[key]
            is_text = key == "run_filter" and isinstance(part, str)
            values[f"filter.{key}"] = part if is_text else _pretty(part)
    if not isinstance(spec.get("run_filter", ""), str):
        values[RUN_FILTER_AS] = "object"
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
