"""A typed example event for an automation: its event type, inside its scope.

For a run automation, ``example_run_records``: a few records of one run that cross the
automation's condition (or enter its state).

Dry runs without an event use it. Simple equality clauses of the filter (a value,
`$eq`, the first of `$in`, `$contains` on a list) are honoured so that the example
usually matches; anything else (`$regex`, ranges, `$or`) is left to the dry run's
explanation, which then says exactly which clause the example fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from app.contract.automations import Automation
from app.contract.events import ALIAS_EVENTS, TAG_EVENTS, EventType
from app.contract.runs import (
    ChangeFilter,
    RunEventType,
    RunStateEventFilter,
    ThresholdFilter,
    ZScoreFilter,
    run_event_filter,
)
from app.contract.timestamps import iso_z
from app.core.scopes import scope_place
from app.serialization import JSONDecodeError, loads

__all__ = ["example_event", "example_run_records"]

_LIST_FIELDS = frozenset({"aliases", "tags"})


def _wanted(condition: Any) -> tuple[bool, Any]:
    """(found, value) for a condition that pins one value."""
    if not isinstance(condition, Mapping):
        return True, condition
    if "$eq" in condition:
        return True, condition["$eq"]
    values = condition.get("$in")
    if isinstance(values, list) and values:
        return True, values[0]
    if "$contains" in condition:
        return True, condition["$contains"]
    return False, None


def _clauses(filter_: Mapping[str, Any], out: list[Mapping[str, Any]], depth: int = 0) -> None:
    """The filter and its `$and` parts, through a one-branch `$or` (the W&B SDK's wrapper)."""
    out.append(filter_)
    if depth > 8:
        return
    parts = filter_.get("$and")
    branches = filter_.get("$or")
    nested = list(parts) if isinstance(parts, list) else []
    if isinstance(branches, list) and len(branches) == 1:
        nested.extend(branches)
    for part in nested:
        if isinstance(part, Mapping):
            _clauses(part, out, depth + 1)


def _pins(filter_: Mapping[str, Any] | None) -> dict[str, Any]:
    """Field -> value for the top-level (and `$and`) clauses that pin one value."""
    pins: dict[str, Any] = {}
    if not filter_:
        return pins
    clauses: list[Mapping[str, Any]] = []
    _clauses(filter_, clauses)
    for clause in clauses:
        for field, condition in clause.items():
            if field.startswith("$"):
                continue
            found, value = _wanted(condition)
            if found:
                pins.setdefault(field, value)
    return pins


def example_event(automation: Automation, now: datetime) -> dict[str, Any]:
    """A valid event of the automation's type inside its scope, as a JSON object."""
    place = scope_place(automation.scope)
    pins = _pins(automation.filter)
    if automation.scope.type != "artifact_collection" and isinstance(pins.get("collection"), str):
        place["collection"] = pins["collection"]
    alias = pins.get("alias") if isinstance(pins.get("alias"), str) else "production"
    version = pins.get("version") if type(pins.get("version")) is int else 1
    artifact: dict[str, Any] = {
        "collection": place["collection"],
        "type": pins["type"] if isinstance(pins.get("type"), str) else "model",
        "version": version,
        "digest": "0123456789abcdef0123456789abcdef",
        "aliases": ["latest"],
        "tags": [],
        "metadata": {},
    }
    for field in _LIST_FIELDS:
        if isinstance(pins.get(field), str):
            artifact[field].append(pins[field])
    for field, value in pins.items():
        if field.startswith("metadata.") and "." not in field[len("metadata.") :]:
            artifact["metadata"][field[len("metadata.") :]] = value
    event: dict[str, Any] = {
        "event_id": f"example-{automation.id}",
        "event_type": automation.event.value,
        "occurred_at": iso_z(now),
        "author": pins["author"] if isinstance(pins.get("author"), str) else "example-user",
        "entity": place["entity"],
        "project": place["project"],
        "artifact": artifact,
    }
    if "registry" in place:
        event["registry"] = place["registry"]
    kind = automation.event
    if kind in ALIAS_EVENTS:
        event["alias"] = alias
        if kind is EventType.ADD_ARTIFACT_ALIAS and alias not in artifact["aliases"]:
            artifact["aliases"].append(alias)
    elif isinstance(pins.get("alias"), str) and pins["alias"] not in artifact["aliases"]:
        # Elsewhere `alias` is matched against the version's aliases.
        artifact["aliases"].append(pins["alias"])
    if kind in TAG_EVENTS:
        tag = pins["tag"] if isinstance(pins.get("tag"), str) else "candidate"
        event["tag"] = tag
        if kind is EventType.ADD_ARTIFACT_TAG and tag not in artifact["tags"]:
            artifact["tags"].append(tag)
    elif isinstance(pins.get("tag"), str) and pins["tag"] not in artifact["tags"]:
        artifact["tags"].append(pins["tag"])
    if kind in (EventType.LINK_ARTIFACT, EventType.UNLINK_ARTIFACT):
        event["source"] = {
            "entity": place["entity"],
            "project": "example-project",
            "collection": place["collection"],
            "version": version,
        }
    return event


def _run_info(automation: Automation) -> dict[str, Any]:
    """The run of the example records, honouring the run filter's simple pins."""
    spec = automation.filter or {}
    raw = spec.get("run_filter")
    try:
        run_filter = loads(raw) if isinstance(raw, str) else raw
    except JSONDecodeError:
        run_filter = None
    pins = _pins(run_filter if isinstance(run_filter, Mapping) else None)
    name = pins.get("display_name", pins.get("name"))
    user = pins.get("user", pins.get("username"))
    tag = pins.get("tags")
    config = {
        field[len("config.") :]: value
        for field, value in pins.items()
        if field.startswith("config.") and "." not in field[len("config.") :]
    }
    return {
        "id": pins["id"] if isinstance(pins.get("id"), str) else "example-run",
        "name": name if isinstance(name, str) else "example-run-1",
        "user": user if isinstance(user, str) else "example-user",
        "tags": [tag] if isinstance(tag, str) else [],
        "config": config,
        "state": "running",
    }


def _series(chosen: ThresholdFilter | ChangeFilter | ZScoreFilter) -> list[float]:
    """Values of the metric after which the condition has just become true."""
    if isinstance(chosen, ThresholdFilter):
        t = float(chosen.threshold)
        false, true = {
            "$gt": (t - 1, t + 1),
            "$gte": (t - 1, t + 1),
            "$lt": (t + 1, t - 1),
            "$lte": (t + 1, t - 1),
            "$eq": (t + 1, t),
            "$ne": (t, t + 1),
        }[chosen.cmp_op]
        size = chosen.window_size if chosen.agg_op is not None else 1
        return [false] * size + [true] * size
    if isinstance(chosen, ChangeFilter):
        base = 10.0
        amount = float(chosen.change_amount)
        delta = 2 * amount * (abs(base) if chosen.change_type == "RELATIVE" else 1.0)
        step = -delta if chosen.change_dir == "DECREASE" else delta
        current = chosen.current_window_size if chosen.agg_op is not None else 1
        prior = chosen.prior_size if chosen.agg_op is not None else 1
        return [base] * prior + [base + step] * current
    # z-score: a window of +-1 around 10 (std about 1), then a value far outside it.
    window = [10.0 + (1 if i % 2 else -1) for i in range(chosen.window_size)]
    far = (float(chosen.threshold) + 2) * 2
    return [*window, 10.0 - far if chosen.change_dir == "DECREASE" else 10.0 + far]


def example_run_records(automation: Automation, now: datetime) -> list[dict[str, Any]]:
    """Run records of one run inside the automation's scope that make it fire (usually).

    A metric automation gets one RUN_METRIC record per value: the condition false over
    its window, then true; a RUN_STATE automation gets the run entering its first state.
    """
    event = automation.event
    assert isinstance(event, RunEventType)
    spec = run_event_filter(event, automation.filter)
    place = scope_place(automation.scope)
    common: dict[str, Any] = {
        "entity": place["entity"],
        "project": place["project"],
        "run": _run_info(automation),
    }
    start = now - timedelta(minutes=1)
    if isinstance(spec, RunStateEventFilter):
        state = sorted(s.value for s in spec.run_state_filter.states)[0]
        return [
            {
                "event_id": f"example-{automation.id}",
                "event_type": "RUN_STATE",
                "occurred_at": iso_z(now),
                **common,
                "run": {**common["run"], "state": state},
                "state": state,
            }
        ]
    chosen = spec.run_metric_filter.chosen
    assert chosen is not None
    values = _series(chosen)
    return [
        {
            "event_id": f"example-{automation.id}-{step}",
            "event_type": "RUN_METRIC",
            "occurred_at": iso_z(start + timedelta(seconds=step)),
            **common,
            "step": step,
            "metrics": {chosen.name: value},
        }
        for step, value in enumerate(values)
    ]
