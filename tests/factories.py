"""Builders of valid events and automations for tests; override any field."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from typing import Any

from app.contract.automations import Automation, parse_automation
from app.contract.events import Event, parse_event
from app.serialization import dumps

__all__ = [
    "ACTION_TOPICS",
    "AVG_LOSS_FILTER",
    "NOW",
    "automation_dict",
    "event_bytes",
    "event_dict",
    "expected_run_job_ids",
    "make_automation",
    "make_event",
    "merge",
    "run_automation_dict",
    "run_metric_bytes",
    "run_metric_dict",
    "run_state_bytes",
    "run_stream",
    "run_stream_automations",
]

#: Action type -> job topic, as a Pipeline takes them.
ACTION_TOPICS: dict[str, str] = {
    "webhook": "actions.webhook",
    "notification": "actions.notification",
    "queue_job": "actions.queue_job",
}

#: A fixed clock: the instant the default event occurred.
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

_EVENT: dict[str, Any] = {
    "event_id": "evt-1",
    "event_type": "ADD_ARTIFACT_ALIAS",
    "occurred_at": "2026-11-26T10:00:00Z",
    "author": "alice",
    "entity": "acme",
    "project": "wandb-registry-model",
    "registry": "model",
    "artifact": {
        "collection": "mnist-classifier",
        "type": "model",
        "version": 3,
        "digest": "9a1b",
        "aliases": ["latest", "production"],
        "tags": ["baseline"],
        "metadata": {"accuracy": 0.93, "framework": "torch"},
    },
    "alias": "production",
}

_AUTOMATION: dict[str, Any] = {
    "id": "deploy-on-production",
    "name": "Deploy when production alias is added",
    "event": "ADD_ARTIFACT_ALIAS",
    "scope": {"type": "registry", "entity": "acme", "registry": "model"},
    "action": {
        "type": "webhook",
        "url": "https://ci.example.com/hooks/deploy",
        "payload": '{"model": "${artifact_version_string}"}',
    },
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`; None removes a key, metadata is replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and key != "metadata":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def event_dict(**overrides: Any) -> dict[str, Any]:
    """A valid registry ADD_ARTIFACT_ALIAS event as a dict, with overrides (None drops)."""
    return merge(_EVENT, overrides)


def event_bytes(**overrides: Any) -> bytes:
    """`event_dict` as JSON bytes."""
    return dumps(event_dict(**overrides))


def make_event(**overrides: Any) -> Event:
    """A validated Event; e.g. make_event(registry=None, project="vision")."""
    event, _ = parse_event(event_bytes(**overrides), 1 << 20)
    return event


def automation_dict(**overrides: Any) -> dict[str, Any]:
    """The example automation as JSON, with overrides merged in."""
    return merge(_AUTOMATION, overrides)


def make_automation(**overrides: Any) -> Automation:
    """A validated Automation (registry webhook on ADD_ARTIFACT_ALIAS), with overrides."""
    data = merge(_AUTOMATION, overrides)
    if "scope" in overrides:
        data["scope"] = overrides["scope"]
    if "action" in overrides:
        data["action"] = overrides["action"]
    return parse_automation(data)


# Run events (issue 14).
_RUN: dict[str, Any] = {
    "id": "run-1",
    "name": "bright-sun-1",
    "user": "alice",
    "tags": ["baseline"],
    "config": {"lr": 0.01, "optimizer": {"name": "adam"}},
    "state": "running",
}


# A RUN_METRIC filter: the average loss of the last 2 values below 0.5.
AVG_LOSS_FILTER: dict[str, Any] = {
    "run_metric_filter": {
        "threshold_filter": {
            "name": "loss", "agg_op": "AVERAGE", "window_size": 2, "cmp_op": "$lt",
            "threshold": 0.5,
        }
    }
}  # fmt: skip


def run_metric_dict(step: int, metrics: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A RUN_METRIC record of run-1 in acme/mnist, one second per step from NOW."""
    base: dict[str, Any] = {
        "event_type": "RUN_METRIC",
        "occurred_at": f"2026-11-26T10:{step // 60 % 60:02d}:{step % 60:02d}Z",
        "entity": "acme",
        "project": "mnist",
        "run": copy.deepcopy(_RUN),
        "step": step,
        "metrics": metrics,
    }
    return merge(base, overrides)


def run_metric_bytes(step: int, metrics: dict[str, Any], **overrides: Any) -> bytes:
    """A RUN_METRIC record as bytes."""
    return dumps(run_metric_dict(step, metrics, **overrides))


def run_state_bytes(state: str, **overrides: Any) -> bytes:
    """A RUN_STATE record of run-1 in acme/mnist."""
    base: dict[str, Any] = {
        "event_type": "RUN_STATE",
        "occurred_at": "2026-11-26T11:00:00Z",
        "entity": "acme",
        "project": "mnist",
        "run": copy.deepcopy(_RUN),
        "state": state,
    }
    return dumps(merge(base, overrides))


def run_automation_dict(
    run_filter: dict[str, Any], event: str = "RUN_METRIC", **overrides: Any
) -> dict[str, Any]:
    """A run automation on project acme/mnist with a webhook that names the metric."""
    base: dict[str, Any] = {
        "id": "loss-watch",
        "name": "Loss watch",
        "event": event,
        "scope": {"type": "project", "entity": "acme", "project": "mnist"},
        "filter": run_filter,
        "action": {
            "type": "webhook",
            "url": "https://ci.example.com/hooks/run",
            "payload": '{"run": "${run_name}", "metric": "${metric_name}", '
            '"value": "${metric_value}", "step": "${step}"}',
        },
    }
    return merge(base, overrides)


def run_stream_automations(entity: str) -> list[Automation]:
    """One run automation of each kind on `entity` (webhooks), for end-to-end streams."""
    hook = {
        "type": "webhook",
        "url": "https://hooks.example.com/run",
        "payload": '{"run": "${run_id}", "metric": "${metric_name}", "value": "${metric_value}"}',
    }
    scope = {"type": "entity", "entity": entity}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("loss-low", "RUN_METRIC", {"run_metric_filter": {"threshold_filter": {
            "name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$lt",
            "threshold": 0.4}}}),
        ("acc-jump", "RUN_METRIC_CHANGE", {"run_metric_filter": {"change_filter": {
            "name": "acc", "agg_op": "MAX", "current_window_size": 2, "prior_window_size": 2,
            "change_amount": 0.1, "change_type": "ABSOLUTE", "change_dir": "INCREASE"}}}),
        ("loss-spike", "RUN_METRIC_ZSCORE", {"run_metric_filter": {"zscore_filter": {
            "name": "loss", "window_size": 5, "threshold": 1.5, "change_dir": "ANY"}}}),
        ("run-ended", "RUN_STATE", {"run_state_filter": {"states": ["FINISHED", "FAILED"]}}),
    ]  # fmt: skip
    return [
        parse_automation(
            {"id": i, "name": i, "event": e, "scope": scope, "filter": f, "action": hook}
        )
        for i, e, f in specs
    ]


def run_stream(entity: str, runs: int, steps: int, *, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(key, value) run records: each run's steps in order, then its end state.

    Runs are interleaved step by step, as many live runs would log; every record has an
    event_id, so job ids do not depend on the partitions and offsets it lands on.
    """
    rng = random.Random(seed)
    walks = {n: [1.0, 0.5] for n in range(runs)}
    out: list[tuple[bytes, bytes]] = []
    for step in range(steps + 1):
        for n in range(runs):
            run = {"id": f"run-{n}", "name": f"run-{n}", "user": "bot", "state": "running"}
            base: dict[str, Any] = {
                "occurred_at": f"2026-11-26T10:{step // 60 % 60:02d}:{step % 60:02d}Z",
                "entity": entity,
                "project": f"project-{n % 3}",
                "run": run,
                "event_id": f"{entity}-run-{n}-{step}",
            }
            if step == steps:
                state = rng.choice(["finished", "failed", "crashed", "killed"])
                value: dict[str, Any] = {**base, "event_type": "RUN_STATE", "state": state}
            else:
                walk = walks[n]
                walk[0] = max(0.0, walk[0] + rng.gauss(-0.02, 0.15))
                walk[1] = min(1.0, max(0.0, walk[1] + rng.gauss(0.0, 0.1)))
                metrics = {"loss": round(walk[0], 4), "acc": round(walk[1], 4)}
                value = {**base, "event_type": "RUN_METRIC", "step": step, "metrics": metrics}
            key = f"{entity}/{base['project']}/run-{n}".encode()
            out.append((key, dumps(value)))
    return out


def expected_run_job_ids(
    automations: list[Automation], records: list[tuple[bytes, bytes]]
) -> set[str]:
    """The job ids a worker must produce for `records`, from the offline run pipeline."""
    from app.contract.jobs import parse_action_job
    from app.core.matching import AutomationIndex
    from app.core.pipeline import Pipeline, SourceInfo
    from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules

    index = AutomationIndex(automations)
    pipeline = RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20), RunRules(list(index)))
    store = MemoryRunStore()
    ids: set[str] = set()
    for offset, (key, value) in enumerate(records):
        result = pipeline.process(value, store=store, source=SourceInfo("runs", 0, offset, key))
        ids.update(parse_action_job(out.value).job_id for out in result.outbounds)
    return ids
