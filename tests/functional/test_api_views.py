"""The API views on a real Faust web app, through aiohttp's test client.

What is real here: ``faust.App`` (memory store, no autodiscovery; the broker URL points
nowhere and the app is never started), its aiohttp web driver, the routes registered
by ``define_api`` exactly as the worker registers them (``app.page`` adds each view to
``app.web.web_app``, which ``aiohttp.test_utils.TestServer`` serves on a loopback port),
``ApiView``'s auth and error handling, ``AutomationStore``, the dry run, and the
worker's ``RuleBook`` over an ``AutomationIndex``.

What stands in: the API's ``send`` is ``app.testing.RecordingWrites``. Its ``on_write``
plays Kafka and the worker's table together: each record written to the automations
topic is applied to the ``RuleBook`` and its offset marked applied, so a write returns
as soon as the rule book holds it (``wait_applied``), as on a worker. A test can stop
that (``Rig.read_back = False``) to see the store's bounded wait give up. The history
table is a dict-backed fake (``HistoryReader``); history routing is covered elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.api.console.views import RecentDeadLetters
from app.api.http import DeliveryRecords
from app.api.routes import define_api
from app.contract.automations import Automation
from app.core.matching import AutomationIndex
from app.serialization import loads
from app.settings import Settings
from app.stream.automations import RuleBook
from app.testing import RecordingWrites, Write
from tests.factories import (
    AVG_LOSS_FILTER,
    automation_dict,
    event_dict,
    make_event,
    run_automation_dict,
    run_metric_bytes,
    run_state_bytes,
)
from tests.support import offline_app

AUTOMATIONS = "automations"

AUTOMATION: dict[str, Any] = automation_dict()


class FakeHistory:
    """The `HistoryReader` the views need, over nothing."""

    name = "history"
    changelog_topic = "history-changelog"
    partitions = 1

    def get(self, automation_id: str) -> dict[str, Any]:
        """No history held."""
        return {}


class Rig:
    """A Faust app with the API routes, a rule book, and the recorded writes.

    `automations` start in the rule book; `dead_letters` feeds the console's page;
    `deliveries` are the webhook deliveries written (routed by `canonical_url`);
    `overrides` change the settings (e.g. `api_token`).
    """

    def __init__(
        self,
        automations: Iterable[Automation] = (),
        dead_letters: RecentDeadLetters | None = None,
        deliveries: DeliveryRecords | None = None,
        canonical_url: str | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = Settings(
            automations_topic=AUTOMATIONS, api_write_wait_seconds=0.2, **overrides
        )
        self.app: Any = offline_app("hookstream-api", web_enabled=True, canonical_url=canonical_url)
        self.index = AutomationIndex(automations)
        self.rulebook = RuleBook(self.index)
        self.rulebook.ready.set()
        self.read_back = True
        self.writes = RecordingWrites(on_write=self._read_back)
        define_api(
            self.app,
            self.settings,
            index=self.index,
            rulebook=self.rulebook,
            history=FakeHistory(),
            send=self.writes,
            dead_letters=dead_letters,
            deliveries=deliveries,
        )

    def _read_back(self, write: Write) -> None:
        if self.read_back and write.topic == AUTOMATIONS:
            self.rulebook.apply(write.key, write.value)
            self.rulebook.advance(write.partition, write.offset + 1)


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(rig.app.web.web_app)) as test_client:
        yield test_client


async def _create(client: TestClient[Any, Any], body: dict[str, Any]) -> Any:
    return await client.post("/automations", json=body)


async def test_post_automation_creates_and_writes_the_record(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """201 with Location and the stored automation; one record on the automations topic,
    keyed by id, holding the automation at revision 1."""
    response = await _create(client, AUTOMATION)
    assert response.status == 201, await response.text()
    assert response.headers["Location"] == f"/automations/{AUTOMATION['id']}"
    assert response.headers["Hookstream-Outcome"] == "created"
    assert "Hookstream-Applied" not in response.headers
    body = await response.json()
    assert body["id"] == AUTOMATION["id"]
    assert body["revision"] == 1
    [write] = rig.writes.writes
    assert write.topic == AUTOMATIONS
    assert write.key == AUTOMATION["id"].encode()
    assert write.value is not None
    record = loads(write.value)
    assert record["id"] == AUTOMATION["id"]
    assert record["action"]["url"] == AUTOMATION["action"]["url"]


async def test_post_invalid_automation_is_422_naming_the_field(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """A bad field answers 422 with `errors` naming it, and nothing is written."""
    bad = {**AUTOMATION, "action": {**AUTOMATION["action"], "url": "not a url"}}
    response = await _create(client, bad)
    assert response.status == 422, await response.text()
    body = await response.json()
    assert [error["field"] for error in body["errors"]] == ["action.url"], body
    assert rig.writes.writes == []


async def test_post_existing_id_is_409(client: TestClient[Any, Any]) -> None:
    """A second create of the same id conflicts."""
    assert (await _create(client, AUTOMATION)).status == 201
    response = await _create(client, AUTOMATION)
    assert response.status == 409, await response.text()


async def test_write_not_read_back_is_flagged(rig: Rig, client: TestClient[Any, Any]) -> None:
    """Durable in Kafka but not applied within the wait: still 201, Applied false."""
    rig.read_back = False
    response = await _create(client, AUTOMATION)
    assert response.status == 201, await response.text()
    assert response.headers["Hookstream-Applied"] == "false"


async def test_kafka_down_is_503(rig: Rig, client: TestClient[Any, Any]) -> None:
    """A producer failure answers 503 with the reason, not 500."""
    rig.writes.fail = ConnectionError("broker unreachable")
    response = await _create(client, AUTOMATION)
    assert response.status == 503, await response.text()
    assert "broker unreachable" in (await response.json())["error"]


async def test_get_automations_lists_what_was_created(client: TestClient[Any, Any]) -> None:
    """GET /automations lists both, the query string filters, GET by id finds one."""
    assert (await _create(client, AUTOMATION)).status == 201
    other = {**AUTOMATION, "id": "second", "enabled": False}
    assert (await _create(client, other)).status == 201
    response = await client.get("/automations")
    assert response.status == 200
    body = await response.json()
    assert body["count"] == 2
    assert sorted(item["id"] for item in body["items"]) == ["deploy-on-production", "second"]
    one = await client.get("/automations/second")
    assert one.status == 200
    assert (await one.json())["enabled"] is False
    assert (await client.get("/automations/missing")).status == 404


async def test_loading_rule_book_is_503(rig: Rig, client: TestClient[Any, Any]) -> None:
    """Before the rule book has read the topic once, reads answer 503 with Retry-After."""
    rig.rulebook.ready.clear()
    response = await client.get("/automations")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"


async def test_dry_run_of_stored_automation_returns_reasons(
    client: TestClient[Any, Any],
) -> None:
    """A matching event: matched with the rendered job; a non-matching one: the reasons."""
    assert (await _create(client, AUTOMATION)).status == 201
    url = f"/automations/{AUTOMATION['id']}/test"
    hit = await client.post(url, json={"event": event_dict()})
    assert hit.status == 200, await hit.text()
    body = await hit.json()
    assert body["matched"] is True
    assert body["topic"] is not None
    assert body["job"] is not None
    miss = await client.post(url, json={"event": event_dict(entity="other")})
    assert miss.status == 200, await miss.text()
    body = await miss.json()
    assert body["matched"] is False
    assert body["reasons"], body
    assert any("entity" in reason for reason in body["reasons"]), body["reasons"]


async def test_dry_run_without_event_uses_a_generated_one(client: TestClient[Any, Any]) -> None:
    """An empty body dry-runs an example event built for the automation."""
    assert (await _create(client, AUTOMATION)).status == 201
    response = await client.post(f"/automations/{AUTOMATION['id']}/test")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["event_generated"] is True
    assert body["matched"] is True


async def test_adhoc_dry_run_prefixes_field_errors(client: TestClient[Any, Any]) -> None:
    """POST /automations/test with an invalid automation names `automation.<field>`."""
    bad = {**AUTOMATION, "event": "NOT_AN_EVENT"}
    response = await client.post("/automations/test", json={"automation": bad})
    assert response.status == 422, await response.text()
    fields = [error["field"] for error in (await response.json())["errors"]]
    assert any(field.startswith("automation.") for field in fields), fields


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "not_json"),
        (b"[1, 2]", 400, "not_object"),
        (b'{"event_type": "ADD_ARTIFACT_ALIAS"}', 422, "missing_field"),
    ],
    ids=["not-json", "not-an-object", "missing-fields"],
)
async def test_post_invalid_event_is_4xx_with_a_reason(
    rig: Rig, client: TestClient[Any, Any], body: bytes, status: int, code: str
) -> None:
    """An invalid event is refused with a 4xx and a reason, never a 500; nothing sent."""
    response = await client.post("/events", data=body, headers={"Content-Type": "application/json"})
    assert response.status == status, await response.text()
    answer = await response.json()
    assert f"invalid event ({code})" in answer["error"]
    assert rig.writes.writes == []


async def test_post_valid_event_is_202_and_sent_to_the_event_topic(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """A valid registry event goes to the registry events topic keyed by its path."""
    response = await client.post("/events", json=event_dict())
    assert response.status == 202, await response.text()
    body = await response.json()
    [write] = rig.writes.writes
    assert body["topic"] == write.topic == rig.settings.registry_events_topic
    assert body["offset"] == write.offset
    assert write.key == make_event().collection_path.encode()
    assert write.value is not None
    assert loads(write.value)["event_id"] == event_dict()["event_id"]


async def test_sdk_shaped_tag_automation_is_created_and_dry_runs(
    client: TestClient[Any, Any],
) -> None:
    """An entity-scoped ADD_ARTIFACT_TAG automation written as the W&B SDK stores it (filter
    as JSON text, a notification without a title) is created, and its dry runs match."""
    body = {
        "id": "review-candidates",
        "name": "Review candidates",
        "event": "add_artifact_tag",
        "scope": {"type": "entity", "entity": "acme"},
        "filter": '{"$or":[{"$and":[{"tag":{"$eq":"candidate"}}]}]}',
        "action": {"type": "notification", "channel": "SLACK_ML", "title": "", "message": ""},
    }
    created = await _create(client, body)
    assert created.status == 201, await created.text()
    stored = await created.json()
    assert stored["event"] == "ADD_ARTIFACT_TAG"
    assert stored["filter"] == {"$or": [{"$and": [{"tag": {"$eq": "candidate"}}]}]}
    url = "/automations/review-candidates/test"
    generated = await (await client.post(url)).json()
    assert generated["matched"] is True, generated
    tag_event = event_dict(event_type="ADD_ARTIFACT_TAG", alias=None, tag="candidate")
    hit = await (await client.post(url, json={"event": tag_event})).json()
    assert hit["matched"] is True
    assert hit["job"]["action"]["title"] == (
        "ADD_ARTIFACT_TAG on acme/wandb-registry-model/mnist-classifier:v3"
    )
    other = await (await client.post(url, json={"event": {**tag_event, "tag": "x"}})).json()
    assert other["matched"] is False
    assert any("tag" in reason for reason in other["reasons"]), other["reasons"]


RUN_AUTOMATION = run_automation_dict(AVG_LOSS_FILTER, cooldown_seconds=30)


async def test_run_dry_run_says_for_each_record_whether_it_fires_and_why_not(
    client: TestClient[Any, Any],
) -> None:
    """A stored run automation over an array of records: verdicts, values, windows, jobs."""
    assert (await _create(client, RUN_AUTOMATION)).status == 201
    values = [0.9, 0.3, 0.2, 0.9, 0.9, 0.1, 0.1]
    records = [loads(run_metric_bytes(step, {"loss": v})) for step, v in enumerate(values)]
    records.append(loads(run_metric_bytes(8, {"acc": 0.5})))
    response = await client.post(f"/automations/{RUN_AUTOMATION['id']}/test",
                                 json={"event": records})  # fmt: skip
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["matched"] is True
    assert body["event"] == records
    assert body["event_generated"] is False
    verdicts = body["records"]
    assert [v["index"] for v in verdicts] == list(range(8))
    assert [v["fired"] for v in verdicts] == [False, False, True, False, False, False, False, False]
    assert verdicts[0]["reasons"] == [
        "undefined: metric 'loss' has 1 of the 2 values the condition reads"
    ]
    assert verdicts[1]["reasons"] == ["the condition is false at 0.6"]
    assert (verdicts[2]["value"], verdicts[2]["window"]) == (0.25, [0.3, 0.2])
    assert verdicts[2]["job"] == body["job"]
    assert body["job"]["event_type"] == "RUN_METRIC"
    assert body["topic"] == "actions.webhook"
    assert verdicts[3]["reasons"] == ["the condition is false at 0.55"]
    # Steps 0..6 are one second apart: the second crossing (step 6) is in the cooldown.
    assert verdicts[6]["reasons"][0].startswith("inside the cooldown of 30 s")
    assert verdicts[7]["reasons"] == ["the record has no metric 'loss' (it logs acc)"]
    assert verdicts[7]["run_path"] == "acme/mnist/run-1"


async def test_run_dry_runs_generate_examples_and_take_one_record(
    client: TestClient[Any, Any],
) -> None:
    """No event: generated records fire; one record object: one verdict; ad hoc works too."""
    state = run_automation_dict({"run_state_filter": {"states": ["FAILED"]}}, event="RUN_STATE",
                                id="failed", action={"payload": None})  # fmt: skip
    generated = await client.post("/automations/test", json={"automation": state})
    assert generated.status == 200, await generated.text()
    body = await generated.json()
    assert (body["matched"], body["event_generated"]) == (True, True)
    payload = loads(body["job"]["action"]["payload"])
    assert payload["run_state"] == "failed"
    assert "artifact_version_string" not in payload
    one = loads(run_state_bytes("crashed"))
    single = await client.post("/automations/test", json={"automation": state, "event": one})
    body = await single.json()
    assert body["matched"] is True, body
    assert body["event"] == one
    assert len(body["records"]) == 1
    finished = loads(run_state_bytes("finished"))
    miss = await client.post("/automations/test", json={"automation": state, "event": finished})
    body = await miss.json()
    assert body["matched"] is False
    assert body["reasons"] == ["state finished is not one of the automation's states (failed)"]
    disabled = {**RUN_AUTOMATION, "enabled": False}
    off = await client.post("/automations/test", json={"automation": disabled})
    body = await off.json()
    assert body["matched"] is False
    assert body["reasons"][0] == "automation is disabled"
    assert body["job"] is not None, "a disabled automation's job is still rendered"


@pytest.mark.parametrize(
    ("event", "status", "field", "reason"),
    [
        ([loads(run_metric_bytes(0, {"loss": 0.1})), loads(run_metric_bytes(1, {"loss": "x"}))],
         422, "event.1.metrics.loss", "metric 'loss' is not a number (got str)"),
        (loads(run_metric_bytes(0, {"loss": 0.1}, run={"id": None})), 422, "event.run.id",
         "Field required"),
        ([], 422, "event", "expected at least one run record"),
        (event_dict(), 422, "event.event_type", "unknown run event type 'ADD_ARTIFACT_ALIAS'"),
        ("loss", 400, None, "invalid run record (not_object)"),
        ([1], 400, None, "not_object"),
    ],
)  # fmt: skip
async def test_invalid_run_records_are_4xx_with_the_field_and_reason(
    client: TestClient[Any, Any], event: Any, status: int, field: str | None, reason: str
) -> None:
    """A bad run record is refused with its dead letter's reason, naming the field; no 500."""
    assert (await _create(client, RUN_AUTOMATION)).status == 201
    response = await client.post(f"/automations/{RUN_AUTOMATION['id']}/test", json={"event": event})
    assert response.status == status, await response.text()
    body = await response.json()
    if field is None:
        assert reason in body["error"]
    else:
        assert any(e["field"] == field and reason in e["reason"] for e in body["errors"]), body
