"""Execution history on a real worker: PENDING from the worker, outcomes from a test double."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from app.contract.jobs import job_id
from app.contract.results import ActionResult, ResultStatus
from app.kafka.clients import produce
from app.serialization import loads
from app.settings import Settings
from tests.factories import (
    AVG_LOSS_FILTER,
    event_dict,
    run_automation_dict,
    run_metric_bytes,
    run_state_bytes,
)
from tests.integration.api_support import http, webhook_automation
from tests.integration.harness import WorkerProcess, consume
from tests.support import eventually, module_settings

KEPT = 3


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Own topics and group; history keeps the last 3 executions."""
    return module_settings(kafka_bootstrap, tmp_path_factory.mktemp("hist"), history_size=KEPT)


def create(worker: WorkerProcess, automation_id: str, entity: str, **overrides: Any) -> None:
    """Create webhook_automation(automation_id) scoped to `entity`'s model registry, via the API."""
    scope = {"type": "registry", "entity": entity, "registry": "model"}
    data = webhook_automation(automation_id, scope=scope, **overrides)
    assert http("POST", worker.url + "/automations", data).status == 201


def fire(worker: WorkerProcess, event_id: str, entity: str) -> None:
    """An event matching webhook_automation() in `entity`'s model registry, over HTTP."""
    reply = http("POST", worker.url + "/events", event_dict(event_id=event_id, entity=entity))
    assert reply.status == 202, reply.body


def history(worker: WorkerProcess, automation_id: str) -> dict[str, Any]:
    """GET /automations/{id}/history."""
    reply = http("GET", worker.url + f"/automations/{automation_id}/history")
    assert reply.status == 200, reply.body
    return dict(reply.json)


def status_of(worker: WorkerProcess, automation_id: str, event_id: str) -> str | None:
    """The history status of the execution of `event_id`, or None while absent."""
    for entry in history(worker, automation_id)["executions"]:
        if entry["event_id"] == event_id:
            return str(entry["status"])
    return None


def dispatcher_writes(settings: Settings, job: dict[str, Any], **fields: Any) -> None:
    """What a real dispatcher writes to action-results for one attempt of `job`."""
    result = ActionResult(
        job_id=job["job_id"],
        automation_id=job["automation_id"],
        event_id=job["event_id"],
        action_type=job["action_type"],
        at=datetime.now(UTC),
        **fields,
    )
    records: list[tuple[bytes | None, bytes | None]] = [
        (job["automation_id"].encode(), result.to_json())
    ]
    asyncio.run(produce(settings.kafka_bootstrap_servers, settings.action_results_topic, records))


def job_of(settings: Settings, event_id: str) -> dict[str, Any]:
    """The webhook job the worker emitted for `event_id` (what a dispatcher would take)."""

    def find() -> dict[str, Any] | None:
        jobs = consume(settings, settings.webhook_topic, expect=0, settle=1.0)
        return next((v for _, v in jobs if v.get("event_id") == event_id), None)

    return eventually(find, timeout=30)


def test_history_goes_from_pending_to_finished(worker: WorkerProcess, settings: Settings) -> None:
    """The worker records PENDING when it emits; the dispatcher's FINISHED closes the entry."""
    create(worker, "hist-ok", "okco")
    fire(worker, "hist-ok-1", "okco")
    assert eventually(lambda: status_of(worker, "hist-ok", "hist-ok-1")) == "PENDING"
    entry = history(worker, "hist-ok")["executions"][0]
    assert entry["job_id"] == job_id("hist-ok-1", "hist-ok", 1)
    assert entry["event_type"] == "ADD_ARTIFACT_ALIAS"
    assert entry["automation_revision"] == 1
    assert entry["attempts"] == 0

    job = job_of(settings, "hist-ok-1")
    dispatcher_writes(settings, job, attempt=0, status=ResultStatus.PENDING)
    dispatcher_writes(
        settings,
        job,
        attempt=1,
        status=ResultStatus.FINISHED,
        http_status=200,
        response_body="deployed",
        duration_seconds=0.12,
        final=True,
    )
    assert eventually(lambda: status_of(worker, "hist-ok", "hist-ok-1") == "FINISHED")
    data = history(worker, "hist-ok")
    entry = data["executions"][0]
    assert (entry["http_status"], entry["attempts"], entry["response_body"]) == (200, 1, "deployed")
    assert entry["event_type"] == "ADD_ARTIFACT_ALIAS", "the worker's fields stay"
    counters = data["counters"]
    assert (counters["matched"], counters["emitted"], counters["finished"], counters["failed"]) == (
        1,
        1,
        1,
        0,
    )
    assert counters["last_fired_at"] is not None


def test_history_goes_from_pending_through_retrying_to_failed(
    worker: WorkerProcess, settings: Settings
) -> None:
    """RETRYING shows the pending retry; FAILED is final and counted."""
    create(worker, "hist-bad", "badco")
    fire(worker, "hist-bad-1", "badco")
    assert eventually(lambda: status_of(worker, "hist-bad", "hist-bad-1")) == "PENDING"
    job = job_of(settings, "hist-bad-1")
    dispatcher_writes(
        settings,
        job,
        attempt=1,
        status=ResultStatus.RETRYING,
        http_status=503,
        reason="retryable status 503",
        next_attempt_at=datetime.now(UTC),
    )
    assert eventually(lambda: status_of(worker, "hist-bad", "hist-bad-1") == "RETRYING")
    dispatcher_writes(
        settings,
        job,
        attempt=2,
        status=ResultStatus.FAILED,
        http_status=500,
        error="HTTP 500 Internal Server Error",
        reason="max attempts",
        final=True,
    )
    assert eventually(lambda: status_of(worker, "hist-bad", "hist-bad-1") == "FAILED")
    data = history(worker, "hist-bad")
    entry = data["executions"][0]
    assert (entry["http_status"], entry["attempts"]) == (500, 2)
    assert entry["error"] == "HTTP 500 Internal Server Error"
    assert (data["counters"]["failed"], data["counters"]["finished"]) == (1, 0)


def test_history_keeps_the_last_n_newest_first_and_counts_them_all(worker: WorkerProcess) -> None:
    """history_size bounds the entries, not the counters."""
    create(worker, "hist-many", "manyco")
    for i in range(KEPT + 2):
        fire(worker, f"hist-many-{i}", "manyco")
    data = eventually(
        lambda: (h := history(worker, "hist-many"))["counters"]["matched"] == KEPT + 2 and h
    )
    events = [entry["event_id"] for entry in data["executions"]]
    assert len(events) == KEPT
    assert set(events) <= {f"hist-many-{i}" for i in range(KEPT + 2)}
    times = [entry["created_at"] for entry in data["executions"]]
    assert times == sorted(times, reverse=True)


def test_no_op_and_kafka_matches_are_finished_by_the_worker(
    worker: WorkerProcess, settings: Settings
) -> None:
    """No dispatcher reports on them: a no_op is done, a kafka job is done once produced."""
    create(worker, "hist-noop", "selfco", action={"type": "no_op"})
    links = settings.registry_events_topic.replace("registry-events", "model-links")
    create(
        worker, "hist-kafka", "selfco", action={"type": "kafka", "topic": links, "payload": "{}"}
    )
    fire(worker, "hist-self-1", "selfco")
    assert eventually(lambda: status_of(worker, "hist-noop", "hist-self-1")) == "FINISHED"
    assert eventually(lambda: status_of(worker, "hist-kafka", "hist-self-1")) == "FINISHED"
    noop = history(worker, "hist-noop")
    assert (noop["counters"]["matched"], noop["counters"]["emitted"]) == (1, 0)
    assert "no_op" in noop["executions"][0]["reason"]
    kafka = history(worker, "hist-kafka")
    assert (kafka["counters"]["emitted"], kafka["counters"]["finished"]) == (1, 1)
    assert links in kafka["executions"][0]["reason"]


def test_history_limit_parameter(worker: WorkerProcess) -> None:
    """?limit=N returns at most N executions; a bad limit is 400."""
    create(worker, "hist-limit", "limco")
    for i in range(2):
        fire(worker, f"hist-limit-{i}", "limco")
    eventually(lambda: history(worker, "hist-limit")["counters"]["matched"] == 2)
    reply = http("GET", worker.url + "/automations/hist-limit/history?limit=1")
    assert len(reply.json["executions"]) == 1
    assert http("GET", worker.url + "/automations/hist-limit/history?limit=0").status == 400


def test_run_firings_show_in_the_history_api(worker: WorkerProcess, settings: Settings) -> None:
    """Run records on the real broker: each firing is PENDING in the history, its job default."""
    entity = "runco"
    metric = run_automation_dict(AVG_LOSS_FILTER, id="hist-run-loss", action={"payload": None})
    metric["scope"] = {"type": "entity", "entity": entity}
    state = run_automation_dict(
        {"run_state_filter": {"states": ["FAILED"]}}, event="RUN_STATE", id="hist-run-failed"
    )
    state["scope"] = {"type": "entity", "entity": entity}
    for data in (metric, state):
        reply = http("POST", worker.url + "/automations", data)
        assert reply.status == 201, reply.body
    key = f"{entity}/mnist/run-1".encode()
    records: list[tuple[bytes | None, bytes | None]] = [
        (key, run_metric_bytes(0, {"loss": 0.9}, entity=entity, event_id="hist-run-0")),
        (key, run_metric_bytes(1, {"loss": 0.05}, entity=entity, event_id="hist-run-1")),
        (key, run_state_bytes("crashed", entity=entity, event_id="hist-run-2")),
    ]
    asyncio.run(produce(settings.kafka_bootstrap_servers, settings.run_events_topic, records))
    assert eventually(lambda: status_of(worker, "hist-run-loss", "hist-run-1")) == "PENDING"
    assert eventually(lambda: status_of(worker, "hist-run-failed", "hist-run-2")) == "PENDING"
    entry = history(worker, "hist-run-loss")["executions"][0]
    assert entry["job_id"] == job_id("hist-run-1", "hist-run-loss", 1)
    assert entry["event_type"] == "RUN_METRIC"
    assert history(worker, "hist-run-failed")["executions"][0]["event_type"] == "RUN_STATE"
    assert history(worker, "hist-run-loss")["counters"]["matched"] == 1
    job = job_of(settings, "hist-run-1")
    payload = loads(job["action"]["payload"])
    assert payload["run_path"] == f"{entity}/mnist/run-1"
    assert (payload["metric_name"], payload["step"]) == ("loss", "1")
