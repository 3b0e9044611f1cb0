"""The management API of one real worker: automations, auth, dry runs, events, OpenAPI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import serialization
from app.api.openapi import OPENAPI_PATH
from app.contract.jobs import job_id
from app.settings import Settings
from tests.factories import event_dict
from tests.integration.api_support import Reply, http, webhook_automation
from tests.integration.harness import ROOT, WorkerProcess, consume, settings_env
from tests.support import eventually, module_settings

TOKEN = "api-test-token"


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """This module's settings (own topics and group), with an API token."""
    return module_settings(kafka_bootstrap, tmp_path_factory.mktemp("api"), api_token=TOKEN)


def call(worker: WorkerProcess, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
    """A request to the worker, with the right token unless `token` is given."""
    kw.setdefault("token", TOKEN)
    return http(method, worker.url + path, body, **kw)


def create(worker: WorkerProcess, data: dict[str, Any]) -> dict[str, Any]:
    """POST an automation that must be accepted."""
    reply = call(worker, "POST", "/automations", data)
    assert reply.status == 201, reply.body
    return dict(reply.json)


def registry_event(event_id: str, **overrides: Any) -> dict[str, Any]:
    """A registry ADD_ARTIFACT_ALIAS event (acme/model, alias production)."""
    return event_dict(event_id=event_id, **overrides)


# --- create, read, list -------------------------------------------------------------


def test_post_creates_with_revision_1_and_a_get_right_after_sees_it(worker: WorkerProcess) -> None:
    """201 with Location and revision 1; GET at once returns it (read-your-writes)."""
    reply = call(worker, "POST", "/automations", webhook_automation("crud-create"))
    assert reply.status == 201
    assert reply.headers["location"] == "/automations/crud-create"
    assert reply.headers["hookstream-outcome"] == "created"
    assert reply.json["revision"] == 1
    assert reply.json["created_at"] == reply.json["updated_at"]
    got = call(worker, "GET", "/automations/crud-create")
    assert got.status == 200
    assert got.json == reply.json
    listed = call(worker, "GET", "/automations").json
    assert "crud-create" in {item["id"] for item in listed["items"]}
    assert listed["count"] == len(listed["items"])


def test_post_with_an_existing_id_is_409(worker: WorkerProcess) -> None:
    """Creating twice conflicts; the first automation is untouched."""
    first = create(worker, webhook_automation("crud-twice"))
    again = call(worker, "POST", "/automations", webhook_automation("crud-twice", name="other"))
    assert again.status == 409
    assert "already exists" in again.json["error"]
    assert call(worker, "GET", "/automations/crud-twice").json == first


def test_post_invalid_is_422_naming_every_bad_field(worker: WorkerProcess) -> None:
    """Each invalid field comes back as {field, reason}; nothing is created."""
    bad = webhook_automation(
        "Not A Slug",
        name="",
        scope={"type": "registry", "entity": "acme"},
        action={"type": "webhook", "url": "ftp://x", "payload": '{"a": "${nope}"}'},
    )
    reply = call(worker, "POST", "/automations", bad)
    assert reply.status == 422
    fields = {error["field"] for error in reply.json["errors"]}
    assert {"id", "name", "scope.registry", "action.url", "action.payload"} <= fields
    assert all(error["reason"] for error in reply.json["errors"])
    unknown_variable = next(e for e in reply.json["errors"] if e["field"] == "action.payload")
    assert "${nope}" in unknown_variable["reason"]


def test_kafka_action_aimed_at_a_reserved_topic_is_422(
    worker: WorkerProcess, settings: Settings
) -> None:
    """A kafka action may not write into Hookstream's own topics, on create or update."""
    aimed = {"type": "kafka", "topic": settings.automations_topic, "payload": "{}"}
    reply = call(worker, "POST", "/automations", webhook_automation("reserved", action=aimed))
    assert reply.status == 422
    assert reply.json["errors"][0]["field"] == "action.topic"
    assert "Hookstream's own topics" in reply.json["errors"][0]["reason"]
    create(worker, webhook_automation("reserved-later"))
    put = call(
        worker,
        "PUT",
        "/automations/reserved-later",
        webhook_automation("reserved-later", action=aimed),
    )
    assert put.status == 422
    assert call(worker, "GET", "/automations/reserved").status == 404


@pytest.mark.parametrize(
    ("raw", "needle"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"", "empty")],
)
def test_post_body_not_a_json_object_is_400(worker: WorkerProcess, raw: bytes, needle: str) -> None:
    """A body that is not JSON, not an object or empty is refused with a reason."""
    reply = call(worker, "POST", "/automations", raw=raw)
    assert reply.status == 400
    assert needle in reply.json["error"]


def test_automation_body_over_one_mebibyte_is_413(worker: WorkerProcess) -> None:
    """Automation bodies are bounded."""
    big = webhook_automation("too-big", description="x" * (1024 * 1024))
    reply = call(worker, "POST", "/automations", big)
    assert reply.status == 413
    assert "limit" in reply.json["error"]


def test_unknown_id_is_404_for_get_put_patch_delete_and_test(worker: WorkerProcess) -> None:
    """Every item route answers 404 for an id nobody created."""
    for method, path, body in [
        ("GET", "/automations/ghost", None),
        ("PUT", "/automations/ghost", webhook_automation("ghost")),
        ("PATCH", "/automations/ghost", {"enabled": False}),
        ("DELETE", "/automations/ghost", None),
        ("POST", "/automations/ghost/test", {}),
        ("GET", "/automations/ghost/history", None),
    ]:
        reply = call(worker, method, path, body)
        assert reply.status == 404, (method, path, reply.body)
        assert "ghost" in reply.json["error"]


def test_list_filters_by_event_scope_and_enabled(worker: WorkerProcess) -> None:
    """Query parameters narrow the list; disabled automations are listed too."""
    create(
        worker,
        webhook_automation(
            "flt-reg", scope={"type": "registry", "entity": "flt", "registry": "model"}
        ),
    )
    create(
        worker,
        webhook_automation(
            "flt-proj",
            event="ADD_ARTIFACT_ALIAS",
            enabled=False,
            scope={"type": "project", "entity": "flt", "project": "vision"},
        ),
    )
    create(
        worker,
        webhook_automation(
            "flt-coll",
            event="CREATE_ARTIFACT",
            filter=None,
            scope={
                "type": "artifact_collection",
                "entity": "flt",
                "project": "vision",
                "collection": "mnist",
            },
        ),
    )

    def ids(**query: str) -> list[str]:
        qs = "&".join(f"{k}={v}" for k, v in {"entity": "flt", **query}.items())
        reply = call(worker, "GET", f"/automations?{qs}")
        assert reply.status == 200
        return [item["id"] for item in reply.json["items"]]

    assert ids() == ["flt-coll", "flt-proj", "flt-reg"]
    assert ids(event="CREATE_ARTIFACT") == ["flt-coll"]
    assert ids(scope_type="registry") == ["flt-reg"]
    assert ids(project="vision") == ["flt-coll", "flt-proj"]
    assert ids(registry="model") == ["flt-reg"]
    assert ids(collection="mnist") == ["flt-coll"]
    assert ids(enabled="false") == ["flt-proj"]
    assert ids(enabled="true", action_type="webhook") == ["flt-coll", "flt-reg"]
    bad = call(worker, "GET", "/automations?enabled=maybe")
    assert bad.status == 400
    assert "enabled" in bad.json["error"]
    assert call(worker, "GET", "/automations?colour=red").status == 400


# --- change and delete --------------------------------------------------------------


def test_put_replaces_raises_the_revision_and_an_identical_put_changes_nothing(
    worker: WorkerProcess,
) -> None:
    """PUT is a whole replacement; the same spec again is 'unchanged' at the same revision."""
    created = create(worker, webhook_automation("crud-put"))
    changed = webhook_automation("crud-put", name="renamed", description="now described")
    reply = call(worker, "PUT", "/automations/crud-put", changed)
    assert reply.status == 200
    assert reply.headers["hookstream-outcome"] == "updated"
    assert reply.json["revision"] == 2
    assert reply.json["name"] == "renamed"
    assert reply.json["created_at"] == created["created_at"]
    assert call(worker, "GET", "/automations/crud-put").json["revision"] == 2
    same = call(worker, "PUT", "/automations/crud-put", {**changed, "revision": 99})
    assert same.status == 200
    assert same.headers["hookstream-outcome"] == "unchanged"
    assert same.json["revision"] == 2
    other = call(worker, "PUT", "/automations/crud-put", webhook_automation("other-id"))
    assert other.status == 422
    assert other.json["errors"][0]["field"] == "id"


def test_patch_disables_and_enables_and_edits_parts(worker: WorkerProcess) -> None:
    """PATCH merges: enabled flips (still listed when off), a nested field changes alone."""
    create(worker, webhook_automation("crud-patch"))
    off = call(worker, "PATCH", "/automations/crud-patch", {"enabled": False})
    assert off.status == 200
    assert off.json["enabled"] is False
    assert off.json["revision"] == 2
    listed = call(worker, "GET", "/automations?enabled=false").json["items"]
    assert "crud-patch" in {item["id"] for item in listed}
    again = call(worker, "PATCH", "/automations/crud-patch", {"enabled": False})
    assert again.headers["hookstream-outcome"] == "unchanged"
    assert again.json["revision"] == 2
    edit = call(
        worker,
        "PATCH",
        "/automations/crud-patch",
        {"enabled": True, "action": {"url": "https://ci.example.com/v2"}, "filter": None},
    )
    assert edit.status == 200
    assert edit.json["revision"] == 3
    assert edit.json["action"]["url"] == "https://ci.example.com/v2"
    assert edit.json["action"]["payload"].startswith('{"model"')
    assert "filter" not in edit.json
    invalid = call(worker, "PATCH", "/automations/crud-patch", {"action": {"url": "nope"}})
    assert invalid.status == 422
    assert invalid.json["errors"][0]["field"] == "action.url"
    renamed = call(worker, "PATCH", "/automations/crud-patch", {"id": "elsewhere"})
    assert renamed.status == 422
    not_object = call(worker, "PATCH", "/automations/crud-patch", [1])
    assert not_object.status == 400


def test_delete_is_204_and_the_automation_is_gone(worker: WorkerProcess) -> None:
    """DELETE answers 204; GET and a second DELETE answer 404."""
    create(worker, webhook_automation("crud-delete"))
    reply = call(worker, "DELETE", "/automations/crud-delete")
    assert reply.status == 204
    assert reply.body == b""
    assert call(worker, "GET", "/automations/crud-delete").status == 404
    assert call(worker, "DELETE", "/automations/crud-delete").status == 404


def test_an_automation_named_test_is_still_readable(worker: WorkerProcess) -> None:
    """GET /automations/test reads the automation 'test'; POST there is the ad-hoc dry run."""
    create(worker, webhook_automation("test"))
    assert call(worker, "GET", "/automations/test").json["id"] == "test"
    assert call(worker, "DELETE", "/automations/test").status == 204


# --- auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/automations", webhook_automation("auth-x")),
        ("PUT", "/automations/auth-x", webhook_automation("auth-x")),
        ("PATCH", "/automations/auth-x", {"enabled": False}),
        ("DELETE", "/automations/auth-x", None),
        ("POST", "/automations/auth-x/test", {}),
        ("POST", "/events", event_dict(event_id="auth-event")),
    ],
)
def test_writes_need_the_bearer_token(
    worker: WorkerProcess, method: str, path: str, body: Any
) -> None:
    """401 without or with a malformed header, 403 with a wrong token; nothing changes."""
    missing = http(method, worker.url + path, body)
    assert missing.status == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for header in ("Token abc", "Bearer", "Bearer two words", "bearer"):
        malformed = http(method, worker.url + path, body, headers={"Authorization": header})
        assert malformed.status == 401, header
        assert "malformed" in malformed.json["error"]
    wrong = http(method, worker.url + path, body, token=TOKEN + "x")
    assert wrong.status == 403
    assert wrong.json["error"] == "invalid API token"
    assert call(worker, "GET", "/automations/auth-x", token=None).status == 404


def test_reads_need_no_token(worker: WorkerProcess) -> None:
    """GET routes answer without Authorization."""
    assert http("GET", worker.url + "/automations").status == 200
    assert http("GET", worker.url + "/openapi.json").status == 200


def test_worker_refuses_a_wide_bind_without_a_token(settings: Settings, tmp_path: Path) -> None:
    """No token and web_host 0.0.0.0: the worker exits with a clear message."""
    env = settings_env(settings.model_copy(update={"api_token": None}))
    env["HOOKSTREAM_WEB_HOST"] = "0.0.0.0"
    env.pop("HOOKSTREAM_API_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0" in done.stderr
    assert "HOOKSTREAM_API_TOKEN" in done.stderr


# --- dry runs ------------------------------------------------------------------------


def test_dry_run_with_a_generated_example_event_renders_the_job(
    worker: WorkerProcess, settings: Settings
) -> None:
    """No event given: a typed example in scope matches and the job is rendered."""
    create(worker, webhook_automation("dry-example"))
    reply = call(worker, "POST", "/automations/dry-example/test")
    assert reply.status == 200
    result = reply.json
    assert result["matched"] is True
    assert result["reasons"] == []
    assert result["event_generated"] is True
    event = result["event"]
    assert (event["event_type"], event["registry"], event["entity"]) == (
        "ADD_ARTIFACT_ALIAS",
        "model",
        "acme",
    )
    assert result["topic"] == settings.webhook_topic
    job = result["job"]
    assert job["automation_revision"] == 1
    assert job["job_id"] == job_id(event["event_id"], "dry-example", 1)
    assert serialization.loads(job["action"]["payload"]) == {
        "model": f"acme/wandb-registry-model/{event['artifact']['collection']}:v1",
        "alias": "production",
    }


def test_dry_run_explains_every_reason_an_event_does_not_match(worker: WorkerProcess) -> None:
    """Scope parts, event type and the filter clause with the compared values are named."""
    create(
        worker,
        webhook_automation(
            "dry-miss",
            scope={
                "type": "artifact_collection",
                "entity": "acme",
                "registry": "model",
                "collection": "mnist-classifier",
            },
        ),
    )
    event = registry_event(
        "dry-miss-1",
        entity="globex",
        registry="dataset",
        alias="staging",
        artifact={"collection": "cifar"},
    )
    result = call(worker, "POST", "/automations/dry-miss/test", {"event": event}).json
    assert result["matched"] is False
    assert result["job"] is None
    reasons = result["reasons"]
    assert "scope entity is 'acme' but the event's entity is 'globex'" in reasons
    assert "scope registry is 'model' but the event's registry is 'dataset'" in reasons
    assert "scope collection is 'mnist-classifier' but the event's collection is 'cifar'" in reasons
    assert any('alias is "staging"' in r and '$regex "^prod"' in r for r in reasons)
    project_event = registry_event(
        "dry-miss-2", event_type="CREATE_ARTIFACT", registry=None, project="vision", alias=None
    )
    result = call(worker, "POST", "/automations/dry-miss/test", {"event": project_event}).json
    assert any("listens for ADD_ARTIFACT_ALIAS" in r for r in result["reasons"])
    assert any("project event" in r for r in result["reasons"])


def test_dry_run_of_a_disabled_automation_says_so_and_still_renders(
    worker: WorkerProcess,
) -> None:
    """Disabled: not matched, reason 'disabled', and the job it would emit once enabled."""
    create(worker, webhook_automation("dry-off", enabled=False))
    result = call(
        worker, "POST", "/automations/dry-off/test", {"event": registry_event("dry-off-1")}
    ).json
    assert result["matched"] is False
    assert result["reasons"] == ["automation is disabled"]
    assert result["job"]["event_id"] == "dry-off-1"


def test_adhoc_dry_run_needs_no_stored_automation_and_emits_nothing(
    worker: WorkerProcess, settings: Settings
) -> None:
    """POST /automations/test renders a job from the body; no job reaches the topic."""
    automation = webhook_automation("dry-adhoc")
    reply = call(
        worker,
        "POST",
        "/automations/test",
        {"automation": automation, "event": registry_event("dry-adhoc-1")},
    )
    assert reply.status == 200
    assert reply.json["matched"] is True
    assert reply.json["job"]["automation_id"] == "dry-adhoc"
    assert call(worker, "GET", "/automations/dry-adhoc").status == 404
    invalid = call(
        worker,
        "POST",
        "/automations/test",
        {"automation": {**automation, "scope": {"type": "registry"}}},
    )
    assert invalid.status == 422
    assert {e["field"] for e in invalid.json["errors"]} >= {"automation.scope.entity"}
    bad_event = call(
        worker, "POST", "/automations/test", {"automation": automation, "event": {"event_id": "x"}}
    )
    assert bad_event.status == 422
    assert any(e["field"].startswith("event.") for e in bad_event.json["errors"])
    assert call(worker, "POST", "/automations/test", {"event": {}}).status == 400
    jobs = consume(settings, settings.webhook_topic, expect=0, timeout=3, settle=1.0)
    assert not [v for _, v in jobs if v and str(v.get("event_id", "")).startswith("dry-")]


# --- events --------------------------------------------------------------------------


def test_post_events_produces_to_the_right_topic_keyed_by_collection(
    worker: WorkerProcess, settings: Settings
) -> None:
    """202 with where it went; the record is the body as received, keyed by collection path."""
    registry = registry_event("ingest-reg-1")
    reply = call(worker, "POST", "/events", registry)
    assert reply.status == 202
    assert reply.json["event_id"] == "ingest-reg-1"
    assert reply.json["topic"] == settings.registry_events_topic
    assert reply.json["partition"] >= 0
    assert reply.json["offset"] >= 0
    artifact = registry_event(
        "ingest-art-1", registry=None, project="vision", event_type="CREATE_ARTIFACT", alias=None
    )
    second = call(worker, "POST", "/events", artifact)
    assert second.status == 202
    assert second.json["topic"] == settings.artifact_events_topic
    records = consume(settings, settings.artifact_events_topic, expect=1)
    key, value = next((k, v) for k, v in records if v.get("event_id") == "ingest-art-1")
    assert key == b"acme/vision/mnist-classifier"
    assert value == artifact


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        (b"{broken", 400, "not valid JSON"),
        (b'"a string"', 400, "not a JSON object"),
        (b"", 400, "empty"),
        (b'{"event_id": "x", "event_type": "DELETE_EVERYTHING"}', 422, "unknown event type"),
    ],
)
def test_post_events_refuses_bad_bodies_with_a_reason(
    worker: WorkerProcess, raw: bytes, status: int, needle: str
) -> None:
    """400 for what is not an object, 422 for an unknown type, each with its reason."""
    reply = call(worker, "POST", "/events", raw=raw)
    assert reply.status == status
    assert needle in reply.json["error"]


def test_post_events_missing_and_invalid_fields_are_422_per_field(worker: WorkerProcess) -> None:
    """Every bad field of an event is listed."""
    event = registry_event("ingest-bad", occurred_at="yesterday", artifact={"version": -1})
    del event["entity"]
    reply = call(worker, "POST", "/events", event)
    assert reply.status == 422
    fields = {e["field"] for e in reply.json["errors"]}
    assert {"entity", "occurred_at", "artifact.version"} <= fields


def test_post_events_over_the_size_limit_is_413(worker: WorkerProcess, settings: Settings) -> None:
    """max_event_bytes bounds HTTP ingest as it bounds Kafka input."""
    big = registry_event(
        "ingest-big", artifact={"metadata": {"blob": "x" * settings.max_event_bytes}}
    )
    reply = call(worker, "POST", "/events", big)
    assert reply.status == 413
    assert str(settings.max_event_bytes) in reply.json["error"]


def test_revision_enters_the_job_id_of_emitted_jobs(
    worker: WorkerProcess, settings: Settings
) -> None:
    """After an update the worker's jobs carry the new revision and its job_id."""
    create(
        worker,
        webhook_automation(
            "rev-job", scope={"type": "registry", "entity": "revco", "registry": "model"}
        ),
    )
    call(worker, "PATCH", "/automations/rev-job", {"name": "second revision"})
    event = registry_event("rev-job-1", entity="revco")
    assert call(worker, "POST", "/events", event).status == 202

    def mine() -> dict[str, Any] | None:
        jobs = consume(settings, settings.webhook_topic, expect=0, settle=1.0)
        return next((v for _, v in jobs if v.get("event_id") == "rev-job-1"), None)

    job = eventually(mine, timeout=30)
    assert job["automation_revision"] == 2
    assert job["job_id"] == job_id("rev-job-1", "rev-job", 2)


def test_openapi_document_is_served_and_equals_the_checked_in_copy(worker: WorkerProcess) -> None:
    """/openapi.json is the code's document and docs/openapi.json holds the same bytes."""
    reply = http("GET", worker.url + "/openapi.json")
    assert reply.status == 200
    assert reply.json["openapi"].startswith("3.1")
    assert "/automations/{automation_id}/history" in reply.json["paths"]
    assert reply.body == OPENAPI_PATH.read_bytes()
