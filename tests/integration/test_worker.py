"""The worker against a real broker: events in, action jobs and dead letters out."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import serialization
from app.contract.automations import Automation, parse_automation
from app.core.evaluate import run_evaluate
from app.core.loader import load_automations
from app.kafka.automations import apply_automations, delete_automation
from app.settings import Settings
from tests.factories import event_dict
from tests.integration.harness import WorkerProcess, consume, produce_events, publish

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"


def example_automations(uid: str) -> list[Automation]:
    """The example automations, with the kafka action pointed at this test's topic."""
    automations = []
    for _, automation in load_automations(EXAMPLES / "automations.yaml"):
        if automation.action.type == "kafka":
            data = automation.model_dump(mode="json")
            data["action"]["topic"] = f"model-links-{uid}"
            automation = parse_automation(data)
        automations.append(automation)
    return automations


def example_events() -> list[dict[str, Any]]:
    """The example events, in file order."""
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    return [serialization.loads(line) for line in lines if line.strip()]


def apply(settings: Settings, automations: list[Automation]) -> None:
    """Write automations to the compacted topic."""
    asyncio.run(apply_automations(settings, automations))


def jobs_on(
    settings: Settings, topic: str, expect: int, settle: float = 1.0
) -> list[dict[str, Any]]:
    """The action jobs on a topic (waits for `expect`, then `settle` seconds more)."""
    return [value for _, value in consume(settings, topic, expect=expect, settle=settle)]


def test_seed_events_produce_the_right_jobs_on_the_right_topics(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess], uid: str, tmp_path: Path
) -> None:
    """Each seed event yields exactly the jobs `hookstream evaluate` predicts, on its topic."""
    automations = example_automations(uid)
    apply(hs_settings, automations)
    start_worker()
    events = example_events()
    publish(hs_settings, events)

    # The offline evaluation runs the same code; its output is the expectation.
    auto_file = tmp_path / "automations.json"
    auto_file.write_bytes(serialization.dumps([a.model_dump(mode="json") for a in automations]))
    out = io.StringIO()
    assert run_evaluate(auto_file, EXAMPLES / "events.jsonl", out, io.StringIO()) == 0
    expected = [serialization.loads(line) for line in out.getvalue().splitlines()]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for job in expected:
        by_type.setdefault(job["action_type"], []).append(job)
    topics = {
        "webhook": hs_settings.webhook_topic,
        "notification": hs_settings.notification_topic,
        "queue_job": hs_settings.queue_job_topic,
        "kafka": f"model-links-{uid}",
    }
    assert set(by_type) == set(topics), "the examples cover every topic action type"
    for action_type, topic in topics.items():
        seen = jobs_on(hs_settings, topic, expect=len(by_type[action_type]))
        key = lambda j: j["job_id"]  # noqa: E731 - a local sort key
        assert sorted(j["job_id"] for j in seen) == sorted(
            j["job_id"] for j in by_type[action_type]
        )
        for got, want in zip(
            sorted(seen, key=key), sorted(by_type[action_type], key=key), strict=True
        ):
            assert got["action"] == want["action"]
            assert got["automation_id"] == want["automation_id"]
            assert got["previous_version"] == want["previous_version"]
            assert got["event"] == next(e for e in events if e["event_id"] == got["event_id"])

    # Spot-check the registry "custom alias" seed case by hand.
    webhook = jobs_on(hs_settings, hs_settings.webhook_topic, expect=1, settle=0)
    deploy = next(j for j in webhook if j["event_id"] == "evt-0002-alias-prod")
    payload = serialization.loads(deploy["action"]["payload"])
    assert payload["model"] == "acme/wandb-registry-model/mnist-classifier:v3"
    assert payload["alias"] == "production"
    assert deploy["action"]["secret"] == "DEPLOY_HOOK_SECRET"
    assert deploy["action_type"] == "webhook"


def test_out_of_scope_filtered_out_and_disabled_events_produce_no_jobs(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Scope, entity, filter and enabled all hold: only the one matching event fires."""
    base = {
        "name": "deploy",
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": {"type": "registry", "entity": "acme", "registry": "model"},
        "filter": {"alias": {"$regex": "^prod"}},
        "action": {
            "type": "webhook",
            "url": "https://ci.example.com/x",
            "payload": '{"m": "${artifact_version_string}"}',
        },
    }
    apply(
        hs_settings,
        [
            parse_automation({**base, "id": "reg-prod"}),
            parse_automation({**base, "id": "off", "enabled": False}),
        ],
    )
    start_worker()
    registry: dict[str, Any] = {"project": "wandb-registry-model", "registry": "model"}
    good = event_dict(event_id="hit", alias="production", **registry)
    misses = [
        event_dict(event_id="miss-filter", alias="staging", **registry),
        event_dict(event_id="miss-entity", alias="production", **{**registry, "entity": "other"}),
        event_dict(
            event_id="miss-registry", alias="production", **{**registry, "registry": "dataset"}
        ),
        event_dict(
            event_id="miss-project-event", alias="production", project="vision", registry=None
        ),
    ]
    publish(hs_settings, [*misses, good])
    jobs = jobs_on(hs_settings, hs_settings.webhook_topic, expect=1, settle=3.0)
    assert [(j["event_id"], j["automation_id"]) for j in jobs] == [("hit", "reg-prod")]


def test_bad_messages_go_to_the_dead_letter_topic_and_good_ones_still_fire(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A mixed stream: every good event's job and every bad message's dead letter appear."""
    apply(
        hs_settings,
        [
            parse_automation(
                {
                    "id": "all-new",
                    "name": "all",
                    "event": "CREATE_ARTIFACT",
                    "scope": {
                        "type": "artifact_collection",
                        "entity": "acme",
                        "project": "vision",
                        "collection": "mnist",
                    },
                    "action": {
                        "type": "queue_job",
                        "queue": "q",
                        "job": "j",
                        "config": {"v": "${artifact_version}"},
                    },
                }
            )
        ],
    )
    worker = start_worker()
    bad: list[bytes] = [
        b"not json",
        b"[1, 2, 3]",
        b"\xff\xfe\xfa",
        serialization.dumps(event_dict(event_id="bad-type", event_type="DELETE_EVERYTHING")),
        serialization.dumps(
            {k: v for k, v in event_dict(event_id="no-artifact").items() if k != "artifact"}
        ),
        b'{"event_id": "' + b"x" * (hs_settings.max_event_bytes + 10) + b'"}',
    ]
    good = [
        event_dict(
            event_id=f"good-{i}",
            event_type="CREATE_ARTIFACT",
            project="vision",
            registry=None,
            artifact={"collection": "mnist", "version": i},
        )
        for i in range(5)
    ]
    stream: list[dict[str, Any] | bytes] = []
    for i, item in enumerate(good):
        stream.append(item)
        if i < len(bad):
            stream.append(bad[i])
    stream.extend(bad[len(good) :])
    produce_events(hs_settings, hs_settings.artifact_events_topic, stream)

    jobs = jobs_on(hs_settings, hs_settings.queue_job_topic, expect=len(good))
    assert sorted(j["event_id"] for j in jobs) == sorted(e["event_id"] for e in good)
    dead = jobs_on(hs_settings, hs_settings.dlq_topic, expect=len(bad))
    assert len(dead) == len(bad)
    codes = sorted(d["error_code"] for d in dead)
    assert codes == sorted(
        ["not_json", "not_object", "not_utf8", "unknown_event_type", "missing_field", "too_large"]
    )
    for record in dead:
        assert record["reason"]
        assert record["source_topic"] == hs_settings.artifact_events_topic
        assert record["source_offset"] >= 0
    assert worker.http_status("/healthz") == 200, "the worker keeps running"
    metrics = worker.get("/metrics").decode()
    assert (
        'hookstream_events_invalid_total{reason="not_json"' in metrics
        or 'reason="not_json"' in metrics
    )
    assert "hookstream_jobs_emitted_total" in metrics


def test_automation_applied_while_running_takes_effect_and_delete_stops_it(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """No restart needed: a new automation fires, a tombstone stops it."""
    start_worker()
    automation = parse_automation(
        {
            "id": "late",
            "name": "late",
            "event": "CREATE_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": "acme",
                "project": "vision",
                "collection": "mnist",
            },
            "action": {
                "type": "notification",
                "channel": "C",
                "title": "t ${artifact_version}",
                "message": "m",
            },
        }
    )
    apply(hs_settings, [automation])
    event = event_dict(
        event_id="after-apply",
        event_type="CREATE_ARTIFACT",
        project="vision",
        registry=None,
        artifact={"collection": "mnist", "version": 1},
    )
    jobs: list[dict[str, Any]] = []
    # The rule book follows the topic within moments; retry the event until it fires.
    for attempt in range(20):
        publish(hs_settings, [{**event, "event_id": f"after-apply-{attempt}"}])
        jobs = jobs_on(hs_settings, hs_settings.notification_topic, expect=1, settle=0.5)
        if jobs:
            break
    assert jobs, "the automation applied at run time never fired"
    assert jobs[0]["action"]["title"] == "t v1"
    fired = len(jobs)

    asyncio.run(delete_automation(hs_settings, "late"))
    import time

    time.sleep(2.0)  # let every worker's rule book read the tombstone
    publish(hs_settings, [{**event, "event_id": "after-delete"}])
    later = jobs_on(hs_settings, hs_settings.notification_topic, expect=fired + 1, settle=2.0)
    assert "after-delete" not in {j["event_id"] for j in later}


def test_automations_and_alias_pointers_survive_a_worker_restart(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """After a restart the rule book and the alias table are rebuilt from Kafka."""
    apply(
        hs_settings,
        [
            parse_automation(
                {
                    "id": "prod",
                    "name": "prod",
                    "event": "ADD_ARTIFACT_ALIAS",
                    "scope": {"type": "project", "entity": "acme", "project": "vision"},
                    "filter": {"alias": "production"},
                    "action": {
                        "type": "webhook",
                        "url": "https://ci.example.com/d",
                        "payload": '{"v": "${artifact_version}", "prev": "${previous_version}"}',
                    },
                }
            )
        ],
    )
    first = start_worker(name="first")
    publish(
        hs_settings,
        [
            event_dict(
                event_id="v3-prod",
                alias="production",
                project="vision",
                registry=None,
                artifact={"collection": "mnist", "version": 3},
            )
        ],
    )
    jobs = jobs_on(hs_settings, hs_settings.webhook_topic, expect=1, settle=0)
    assert jobs[0]["previous_version"] is None
    assert first.stop() is not None

    start_worker(name="second")
    publish(
        hs_settings,
        [
            event_dict(
                event_id="v4-prod",
                alias="production",
                project="vision",
                registry=None,
                artifact={"collection": "mnist", "version": 4},
            )
        ],
    )
    jobs = jobs_on(hs_settings, hs_settings.webhook_topic, expect=2, settle=0)
    second = next(j for j in jobs if j["event_id"] == "v4-prod")
    assert second["previous_version"] == 3, "the alias table came back from its changelog"
    assert serialization.loads(second["action"]["payload"]) == {"v": "v4", "prev": "v3"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_worker_serves_health_readiness_and_metrics(
    start_worker: Callable[..., WorkerProcess], path: str
) -> None:
    """The web port answers the operational endpoints."""
    worker = start_worker()
    assert worker.http_status(path) == 200


def test_example_file_parses_as_yaml_documents() -> None:
    """The examples stay loadable by plain YAML tools, not only by Hookstream."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "automations.yaml").read_text()) if d]
    assert len(docs) == len(load_automations(EXAMPLES / "automations.yaml"))
