"""The console's pages on a real Faust web app through aiohttp's test client.

The rig is the API views' (tests.functional.test_api_views.Rig): a real faust.App,
the routes `define_api` registers (the console's among them), the real store, query,
dry run and rule book; Kafka is `RecordingWrites`. The history part's cross-worker
read (`read_history`) is replaced by a canned history: its routing is the API's,
tested in tests/integration/test_api_history.py, and the browser test reads it from
a real worker.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.api.console import views
from app.api.console.views import PAGE_SIZE, DeadLetterRow
from app.api.problems import ApiError
from app.contract.automations import (
    AUTOMATION_EVENT_TYPES,
    Automation,
    parse_automation,
    scope_types_of,
)
from app.contract.timestamps import iso_z
from app.core.history import apply_result, read_result, run_execution_records
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules
from app.serialization import dumps_str, loads
from tests.factories import (
    ACTION_TOPICS,
    AVG_LOSS_FILTER,
    automation_dict,
    event_dict,
    make_automation,
    run_automation_dict,
    run_metric_bytes,
)
from tests.functional.test_api_views import AUTOMATION, Rig

TOKEN = "console-functional-token"
ID = AUTOMATION["id"]
FORM = {
    "mode": "form",
    "id": "from-the-form",
    "name": "From the form",
    "event": "ADD_ARTIFACT_ALIAS",
    "enabled": "true",
    "scope.type": "registry",
    "scope.entity": "acme",
    "scope.registry": "model",
    "filter": '{"alias": "production"}',
    "action.type": "webhook",
    "webhook.url": "https://ci.example.com/hooks/deploy",
    "webhook.payload": '{"model": "${artifact_version_string}"}',
    "webhook.secret": "DEPLOY_HOOK_SECRET",
}
HX = {"HX-Request": "true"}


async def _serve(rig: Rig) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(rig.app.web.web_app))
    await client.start_server()
    return client


@pytest.fixture
def rig() -> Rig:
    return Rig([make_automation()])


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[TestClient[Any, Any]]:
    test_client = await _serve(rig)
    try:
        yield test_client
    finally:
        await test_client.close()


def rows(html: str) -> list[str]:
    """The automation ids a list page shows, in order."""
    return re.findall(r'<td><a href="/console/automations/[^"]+">([^<]+)</a></td>', html)


async def test_root_redirects_to_the_console_even_with_fausts_index() -> None:
    """`/` is 302 to /console/, also once Faust's own blueprints (its `/` index) are added."""
    rig = Rig()
    rig.app.web.init_server()
    client = await _serve(rig)
    try:
        response = await client.get("/", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/console/"
        page = await client.get("/console/")
        assert page.status == 200
        assert "<h1>Automations</h1>" in await page.text()
    finally:
        await client.close()


async def test_ten_thousand_automations_are_paginated_on_the_server() -> None:
    """10,000 automations: a page holds 50 rows, the pager counts 200 pages, search and
    filters run over all of them, and a page stays small whatever the total."""
    # A hundred teams of a hundred: the rule book's index rebuilds a bucket per insert,
    # so 10,000 in one (event, scope) bucket would take the index, not the page, ~45 s.
    many = [
        make_automation(
            id=f"auto-{n:05d}",
            name=f"Automation {n}",
            enabled=n % 10 != 0,
            scope={"type": "registry", "entity": f"team-{n % 100}", "registry": "model"},
        )
        for n in range(10_000)
    ]
    client = await _serve(Rig(many))
    try:
        first = await client.get("/console/")
        html = await first.text()
        assert first.status == 200
        assert rows(html) == [f"auto-{n:05d}" for n in range(PAGE_SIZE)]
        assert "10000 automations, showing 1 to 50" in html
        assert "Page 1 of 200" in html
        assert len(html.encode()) < 64 * 1024
        last = await (await client.get("/console/?page=200")).text()
        assert rows(last)[-1] == "auto-09999"
        assert "Page 200 of 200" in last
        beyond = await (await client.get("/console/?page=999")).text()
        assert "Page 200 of 200" in beyond
        fragment = await client.get(
            "/console/?enabled=false&q=automation&page=2&per_page=100",
            headers={**HX, "HX-Target": "results"},
        )
        body = await fragment.text()
        assert "<html" not in body
        assert "1000 automations, showing 101 to 200" in body
        assert rows(body)[0] == "auto-01000"
        assert all(int(i[-5:]) % 10 == 0 for i in rows(body))
        found = await (await client.get("/console/?q=automation%209999")).text()
        assert rows(found) == ["auto-09999"]
    finally:
        await client.close()


async def test_list_filters_are_the_apis_query_and_refuse_like_it(
    client: TestClient[Any, Any],
) -> None:
    """A filter value the API refuses is a 400 page with the API's reason, not a 500."""
    kept = await (await client.get("/console/?action_type=webhook&event=")).text()
    assert rows(kept) == [ID]
    assert rows(await (await client.get("/console/?action_type=no_op")).text()) == []
    bad = await client.get("/console/?event=DELETE")
    assert bad.status == 400
    assert "expected one of" in await bad.text()
    unknown = await client.get("/console/?colour=red")
    assert unknown.status == 400
    assert "unknown query parameter colour" in await unknown.text()
    assert (await client.get("/console/?page=zero")).status == 400


async def test_form_errors_are_shown_at_the_field_the_api_names(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """The API's 422 for `action.url` sits inside the URL input's field; nothing is written."""
    response = await client.post(
        "/console/automations", data={**FORM, "webhook.url": "not a url"}, headers=HX
    )
    assert response.status == 422
    html = await response.text()
    field = re.search(r'<div class="field invalid">(.*?)</div>', html, re.S)
    assert field is not None, html
    assert 'name="webhook.url"' in field.group(1)
    assert 'aria-invalid="true"' in field.group(1)
    assert 'data-field="action.url"' in field.group(1)
    assert "http:// or https://" in field.group(1)
    assert 'value="not a url"' in html  # what was typed is kept
    assert rig.writes.writes == []


async def test_unreadable_json_fields_are_errors_at_those_fields(
    client: TestClient[Any, Any],
) -> None:
    """A filter that is not JSON is refused at `filter` before the API is asked."""
    response = await client.post("/console/automations", data={**FORM, "filter": "{nope"})
    assert response.status == 422
    html = await response.text()
    assert 'data-field="filter"' in html
    assert "not valid JSON" in html


async def test_form_creates_through_the_store(rig: Rig, client: TestClient[Any, Any]) -> None:
    """A valid form is one record on the automations topic; htmx is sent to the new page."""
    response = await client.post("/console/automations", data=FORM, headers=HX)
    assert response.status == 200, await response.text()
    assert response.headers["HX-Redirect"] == "/console/automations/from-the-form"
    [write] = rig.writes.writes
    assert write.value is not None
    record = loads(write.value)
    assert record["action"]["secret"] == "DEPLOY_HOOK_SECRET"
    assert record["filter"] == {"alias": "production"}
    assert record["revision"] == 1
    plain = await client.post(
        "/console/automations", data={**FORM, "id": "plain-post"}, allow_redirects=False
    )
    assert plain.status == 303
    assert plain.headers["Location"] == "/console/automations/plain-post"


async def test_yaml_errors_name_the_field_and_its_line(client: TestClient[Any, Any]) -> None:
    """YAML goes through the same validation; the error gives the key's line."""
    text = "id: from-yaml\nname: x\nevent: ADD_ARTIFACT_ALIAS\nscope: {type: galaxy}\n"
    text += "action: {type: no_op}\n"
    response = await client.post("/console/automations", data={"mode": "yaml", "yaml": text})
    assert response.status == 422
    html = await response.text()
    assert re.search(r'data-field="scope[^"]*">line 4, ', html), html
    broken = await client.post("/console/automations", data={"mode": "yaml", "yaml": "a: [1"})
    assert broken.status == 422
    assert "not valid YAML" in await broken.text()


async def test_edit_replaces_and_raises_the_revision(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """The edit page is filled from the stored automation; saving a change is revision 2."""
    page = await (await client.get(f"/console/automations/{ID}/edit")).text()
    assert f'value="{AUTOMATION["name"]}"' in page
    assert "readonly" in page
    yaml_page = await (await client.get(f"/console/automations/{ID}/edit?mode=yaml")).text()
    assert f"id: {ID}" in yaml_page
    form = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="text" value="([^"]*)"', page))
    assert form["scope.entity"] == "acme"
    changed = {**form, "mode": "form", "enabled": "true", "name": "Renamed"}
    changed.update({"event": "ADD_ARTIFACT_ALIAS", "scope.type": "registry"})
    changed.update({"action.type": "webhook", "webhook.payload": AUTOMATION["action"]["payload"]})
    response = await client.post(f"/console/automations/{ID}", data=changed, headers=HX)
    assert response.status == 200, await response.text()
    assert rig.index.get(ID) is not None
    automation = rig.index.get(ID)
    assert automation is not None
    assert automation.automation.name == "Renamed"
    assert automation.automation.revision == 2


async def test_enable_and_disable_patch_through_the_store(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """The toggle answers its new state and revision; a bad value is a 400."""
    off = await client.post(f"/console/automations/{ID}/enabled", data={"enabled": "false"})
    html = await off.text()
    assert off.status == 200, html
    assert '<strong id="state">disabled</strong>' in html
    assert '<strong id="revision">2</strong>' in html
    assert loads(rig.writes.writes[-1].value or b"{}")["enabled"] is False
    on = await (
        await client.post(f"/console/automations/{ID}/enabled", data={"enabled": "true"})
    ).text()
    assert '<strong id="state">enabled</strong>' in on
    bad = await client.post(f"/console/automations/{ID}/enabled", data={"enabled": "maybe"})
    assert bad.status == 400
    missing = await client.post("/console/automations/nope/enabled", data={"enabled": "true"})
    assert missing.status == 404
    assert "not found" in await missing.text()


async def test_writes_need_the_token_and_it_is_never_shown() -> None:
    """With a token configured, console writes without it are 401, with a wrong one 403;
    reads need none, and no page carries the token."""
    rig = Rig([make_automation()], api_token=TOKEN)
    client = await _serve(rig)
    try:
        url = f"/console/automations/{ID}/enabled"
        refused = await client.post(url, data={"enabled": "false"})
        assert refused.status == 401
        assert "Authorization" in await refused.text()
        # htmx shows the refusal in the message area; the toggle stays as it was.
        assert refused.headers["HX-Retarget"] == "#messages"
        assert refused.headers["HX-Reselect"] == "#refusal"
        wrong = await client.post(
            url, data={"enabled": "false"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status == 403
        dry = await client.post(f"/console/automations/{ID}/dry-run", data={"event": ""})
        assert dry.status == 401
        assert rig.writes.writes == []
        ok = await client.post(
            url, data={"enabled": "false"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status == 200
        for path in ("/console/", f"/console/automations/{ID}", f"/console/automations/{ID}/edit"):
            page = await client.get(path)
            assert page.status == 200
            assert TOKEN not in await page.text()
    finally:
        await client.close()


async def test_dry_run_lists_the_reasons_and_runs_the_example(
    client: TestClient[Any, Any],
) -> None:
    """A pasted event out of scope: each reason; empty: the generated example fires."""
    miss = await client.post(
        f"/console/automations/{ID}/dry-run",
        data={"event": dumps_str(event_dict(entity="other", event_type="CREATE_ARTIFACT"))},
    )
    html = await miss.text()
    assert miss.status == 200, html
    assert "It does not fire." in html
    reasons = re.findall(r"<li>(.*?)</li>", html.split('id="dry-run-reasons"')[1])
    assert any("&#39;other&#39;" in r for r in reasons), reasons
    assert any("CREATE_ARTIFACT" in r for r in reasons), reasons
    example = await (await client.get(f"/console/automations/{ID}/example")).text()
    assert f"example-{ID}" in example
    hit = await (await client.post(f"/console/automations/{ID}/dry-run", data={})).text()
    assert "It fires" in hit
    assert "The generated example event." in hit
    bad = await client.post(f"/console/automations/{ID}/dry-run", data={"event": "{nope"})
    assert bad.status == 400
    assert "not_json" in await bad.text()


async def test_history_part_shows_counters_timeline_and_executions(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counters, the chart's series and each execution's status and detail are rendered."""
    now = datetime.now(UTC)

    def execution(minutes: int, status: str, detail: str) -> dict[str, Any]:
        at = iso_z(now - timedelta(minutes=minutes))
        return {
            "job_id": f"job-{minutes}",
            "event_id": f"event-{minutes}",
            "action_type": "webhook",
            "status": status,
            "matched_at": at,
            "created_at": at,
            "updated_at": at,
            "attempts": 1,
            "http_status": 500 if status == "FAILED" else 200,
            "error": detail if status == "FAILED" else None,
            "reason": None if status == "FAILED" else detail,
        }

    history = {
        "automation_id": ID,
        "counters": {"matched": 7, "emitted": 7, "finished": 5, "failed": 1},
        "executions": [
            execution(1, "FAILED", "HTTP 500 from the endpoint"),
            execution(5, "FINISHED", "delivered"),
        ],
    }

    async def canned(ctx: Any, automation_id: str, limit: int) -> dict[str, Any]:
        assert automation_id == ID
        return history

    monkeypatch.setattr(views, "read_history", canned)
    html = await (await client.get(f"/console/automations/{ID}/history")).text()
    assert '<dd id="counter-matched">7</dd>' in html
    assert '<dd id="counter-failed">1</dd>' in html
    assert "HTTP 500 from the endpoint" in html
    assert "FINISHED" in html
    found = re.search(r'data-timeline="([^"]+)"', html)
    assert found is not None
    chart = loads(found.group(1).replace("&#34;", '"'))
    assert (sum(chart["firings"]), sum(chart["finished"]), sum(chart["failed"])) == (2, 1, 1)


async def test_history_part_answers_the_apis_refusal_as_html(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history partition being moved is a 503 fragment with the reason."""

    async def moving(ctx: Any, automation_id: str, limit: int) -> dict[str, Any]:
        raise ApiError(503, "history partitions are being (re)assigned; retry")

    monkeypatch.setattr(views, "read_history", moving)
    response = await client.get(f"/console/automations/{ID}/history")
    assert response.status == 503
    assert "being (re)assigned" in await response.text()


async def test_dead_letters_page_lists_reasons_and_says_when_kafka_is_away() -> None:
    """Rows come from the reader; a failing reader is a 503 page, not a 500."""
    row = DeadLetterRow(
        failed_at="2026-12-01T10:00:00Z",
        source="registry-events[0]@42",
        error_code="not_json",
        reason="not valid JSON: unexpected character",
        event_id=None,
        preview="{<b>not json",
    )

    async def recent(limit: int) -> list[DeadLetterRow]:
        return [row]

    client = await _serve(Rig(dead_letters=recent))
    try:
        html = await (await client.get("/console/dead-letters")).text()
        assert "not valid JSON: unexpected character" in html
        assert "registry-events[0]@42" in html
        assert "{&lt;b&gt;not json" in html
    finally:
        await client.close()

    async def away(limit: int) -> list[DeadLetterRow]:
        raise ConnectionError("broker unreachable")

    client = await _serve(Rig(dead_letters=away))
    try:
        response = await client.get("/console/dead-letters")
        assert response.status == 503
        assert "broker unreachable" in await response.text()
    finally:
        await client.close()


async def test_user_text_is_escaped(rig: Rig, client: TestClient[Any, Any]) -> None:
    """An automation's name is text on every page, never markup."""
    hostile = automation_dict(id="hostile", name="<script>alert(1)</script>")
    assert (await client.post("/automations", json=hostile)).status == 201
    for path in ("/console/", "/console/automations/hostile", "/console/automations/hostile/edit"):
        html = await (await client.get(path)).text()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_static_assets_ship_in_the_package(client: TestClient[Any, Any]) -> None:
    """The page's script, its styles and the vendored htmx and uPlot, with their licences."""
    page = await (await client.get("/console/")).text()
    for asset in re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page):
        response = await client.get(asset)
        assert response.status == 200, asset
    assert len(re.findall(r'(?:src|href)="/console/static/', page)) == 5
    vendor = views.STATIC_DIR / "vendor"
    for licence in ("htmx-LICENSE", "uPlot-LICENSE", "VERSIONS.md"):
        assert (vendor / licence).read_text().strip(), licence


def test_the_rig_starts_with_the_given_automations() -> None:
    """Rig(automations) puts them in the rule book (what the 10,000 test relies on)."""
    rig = Rig([make_automation(id="one"), make_automation(id="two")])
    assert sorted(c.id for c in rig.index) == ["one", "two"]
    assert isinstance(rig.index.get("one").automation, Automation)  # type: ignore[union-attr]


async def test_run_automation_dry_run_page_lists_each_record() -> None:
    """The console's example of a run automation is run records; its dry run a table of them."""
    automation = parse_automation(run_automation_dict(AVG_LOSS_FILTER))
    client = await _serve(Rig([automation]))
    try:
        base = f"/console/automations/{automation.id}"
        example = await (await client.get(f"{base}/example")).text()
        assert "RUN_METRIC" in example
        assert "&#34;step&#34;: 0" in example
        hit = await client.post(f"{base}/dry-run", data={})
        html = await hit.text()
        assert hit.status == 200, html
        assert "It fires" in html
        assert "The generated example records." in html
        table = html.split('id="dry-run-records"')[1].split("</table>")[0]
        cells = re.findall(r"<tr class=\"(ok|miss)\">", table)
        assert cells.count("ok") == 1
        assert "undefined: metric &#39;loss&#39; has 1 of the 2 values" in table
        records = [
            loads(run_metric_bytes(0, {"loss": 0.9})),
            loads(run_metric_bytes(0, {"loss": "x"})),
        ]
        bad = await client.post(f"{base}/dry-run", data={"event": dumps_str(records)})
        text = await bad.text()
        assert bad.status == 422, text
        assert "1.metrics.loss" in text
    finally:
        await client.close()


async def test_history_part_shows_run_executions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run automation's history (folded from its worker records) shows its firings."""
    automation = parse_automation(run_automation_dict(AVG_LOSS_FILTER))
    index = AutomationIndex([automation])
    runs = RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20), RunRules(list(index)))
    store = MemoryRunStore()
    state: Any = None
    for offset, value in enumerate([0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1]):
        raw = run_metric_bytes(offset, {"loss": value}, event_id=f"run-step-{offset}")
        result = runs.process(raw, store=store, source=SourceInfo("run-events", 0, offset))
        for rec in run_execution_records(result, datetime.now(UTC)):
            read = read_result(rec.value, rec.headers)
            assert read is not None
            state = apply_result(state, read[0], read[1], 50)

    async def canned(ctx: Any, automation_id: str, limit: int) -> dict[str, Any]:
        return dict(state)

    monkeypatch.setattr(views, "read_history", canned)
    client = await _serve(Rig([automation]))
    try:
        html = await (await client.get(f"/console/automations/{automation.id}/history")).text()
    finally:
        await client.close()
    assert '<dd id="counter-matched">2</dd>' in html
    rows = html.split('id="executions"')[1]
    assert rows.count("RUN_METRIC") == 2
    assert "<code>run-step-6</code>" in rows
    assert "<code>run-step-2</code>" in rows
    assert "PENDING" in rows


RUN_FORM = {
    "mode": "form",
    "id": "loss-low",
    "name": "Loss low",
    "event": "RUN_METRIC",
    "enabled": "true",
    "scope.type": "project",
    "scope.entity": "acme",
    "scope.project": "mnist",
    "filter": "",
    "filter.run_filter.as": "text",
    "filter.run_filter": '{"$and":[{"display_name":{"$contains":"exp"}}]}',
    "filter.run_metric_filter": (
        '{"threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 5,'
        ' "cmp_op": "$lt", "threshold": 0.1}}'
    ),
    "filter.run_state_filter": "",
    "cooldown_seconds": "30",
    "action.type": "no_op",
}


def field_of(html: str, name: str) -> str:
    """The markup of the `.field` block holding the input or select named `name`."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', html, re.S):
        if f'name="{name}"' in block:
            return str(block)
    raise AssertionError(f"no field {name} in the page")


async def test_the_form_offers_every_event_type_of_the_contract(
    client: TestClient[Any, Any],
) -> None:
    """The event choices are the contract's (run events too), each with the scope types it
    takes; the run inputs are hidden until a run event is chosen."""
    html = await (await client.get("/console/new")).text()
    event = field_of(html, "event")
    offered = re.findall(r"<option[^>]*>([A-Z_]+)</option>", event)
    assert offered == [t.value for t in AUTOMATION_EVENT_TYPES]
    scopes = re.search(r"data-scopes-of='([^']+)'", html)
    assert scopes is not None
    assert loads(scopes.group(1)) == {
        t.value: list(scope_types_of(t)) for t in AUTOMATION_EVENT_TYPES
    }
    assert loads(scopes.group(1))["RUN_STATE"] == ["project", "entity"]
    assert re.search(r'<fieldset class="run" data-events="run" hidden disabled>', html)


async def test_a_run_automation_is_created_from_the_form_and_edited_back(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """The run inputs make the SDK's filter JSON and the cooldown; the edit page holds
    them again, with only the scopes a run event takes."""
    response = await client.post("/console/automations", data=RUN_FORM, headers=HX)
    assert response.status == 200, await response.text()
    [write] = rig.writes.writes
    assert write.value is not None
    record = loads(write.value)
    assert record["event"] == "RUN_METRIC"
    assert record["filter"] == {
        "run_filter": RUN_FORM["filter.run_filter"],
        "run_metric_filter": loads(RUN_FORM["filter.run_metric_filter"]),
    }
    assert record["cooldown_seconds"] == 30
    page = await (await client.get("/console/automations/loss-low/edit")).text()
    assert '<fieldset class="run" data-events="run">' in page
    assert RUN_FORM["filter.run_filter"].replace('"', "&#34;") in field_of(
        page, "filter.run_filter"
    )
    assert 'value="30"' in field_of(page, "cooldown_seconds")
    scope = field_of(page, "scope.type")
    assert "<option disabled>registry</option>" in scope
    assert "<option selected>project</option>" in scope


NO_RUN_FILTER = {"filter.run_filter": "", "filter.run_metric_filter": ""}
ALIAS_EVENT = {"event": "ADD_ARTIFACT_ALIAS"}


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        (
            {"filter.run_metric_filter": '{"threshold_filter": {"name": "loss", "threshold": 1}}'},
            "filter.run_metric_filter",
            "filter.run_metric_filter.threshold_filter.cmp_op",
        ),
        ({"filter.run_filter": '{"colour": "red"}'}, "filter.run_filter", "colour"),
        ({"cooldown_seconds": "-5"}, "cooldown_seconds", "greater than"),
        (
            {"scope.type": "registry", "scope.project": "", "scope.registry": "model"},
            "scope.type",
            "project or entity",
        ),
        (ALIAS_EVENT, "filter.run_filter", "unknown field"),
        ({**ALIAS_EVENT, **NO_RUN_FILTER}, "cooldown_seconds", "run events only"),
    ],
)
async def test_the_apis_run_errors_are_shown_at_their_inputs(
    rig: Rig,
    client: TestClient[Any, Any],
    changes: dict[str, str],
    field: str,
    needle: str,
) -> None:
    """The API's 422 for a path inside the run filter (or the cooldown, or the scope a
    run event takes) is shown at the input holding it; nothing is written."""
    response = await client.post("/console/automations", data={**RUN_FORM, **changes}, headers=HX)
    assert response.status == 422
    html = await response.text()
    if field == "scope.type":
        # The scope type's error sits under its choice, as for artifact events.
        shown = re.search(r'<p class="field-error" id="error-scope-type"[^>]*>([^<]*)</p>', html)
        assert shown is not None, html
        assert needle in shown.group(1)
    else:
        block = field_of(html, field)
        # Its fieldset is in view, also for an artifact event given run inputs.
        assert '<fieldset class="run" data-events="run">' in html
        assert 'aria-invalid="true"' in block
        assert f'data-field="{field}"' in block
        assert needle in block, block
    assert rig.writes.writes == []


async def test_the_list_filters_run_automations_by_their_event(
    rig: Rig, client: TestClient[Any, Any]
) -> None:
    """`?event=RUN_METRIC` (the list's event choice) keeps the run automations only."""
    assert (await client.post("/console/automations", data=RUN_FORM, headers=HX)).status == 200
    listed = await client.get("/console/?event=RUN_METRIC")
    assert listed.status == 200
    assert rows(await listed.text()) == ["loss-low"]
    assert rows(await (await client.get("/console/?event=RUN_STATE")).text()) == []
