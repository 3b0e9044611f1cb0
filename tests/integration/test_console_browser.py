"""The web console in a real browser: Debian's chromium, driven by Playwright, against a
real worker on the real broker.

Each test leaves a screenshot of its view in build/console/ (docs/console/ holds the
copies the README and docs/console.md show). Under CI a missing chromium fails.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app import serialization
from app.core.loader import load_automations
from app.core.stored import stored_json
from app.settings import Settings
from tests.factories import event_dict
from tests.integration.api_support import Reply, http, webhook_automation
from tests.integration.harness import ROOT, WorkerProcess, produce_events
from tests.support import module_settings

T = TypeVar("T")

TOKEN = "console-test-token"
SHOTS = ROOT / "build" / "console"
# Flags that work on this kind of machine (closed network, root, no GPU).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """This module's settings (own topics and group), with an API token."""
    return module_settings(kafka_bootstrap, tmp_path_factory.mktemp("console"), api_token=TOKEN)


@pytest.fixture(scope="module")
def browser(worker: WorkerProcess) -> Iterator[Browser]:
    """Debian's chromium, headless (never a browser Playwright downloads).

    Playwright's sync API runs an event loop in this thread while the browser is open,
    so the worker (whose settings fixture uses asyncio.run) starts first, and a test
    produces to Kafka from another thread (`in_thread`).
    """
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        message = "chromium is not installed (make test-tools installs Debian's chromium)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, worker: WorkerProcess) -> Iterator[Page]:
    """A fresh tab, 1200 px wide, on the console with the API token set."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.goto(worker.url + "/")
    tab.get_by_label("API token").fill(TOKEN)
    tab.get_by_role("button", name="Use token").click()
    expect(tab.locator("#token-state")).to_have_text("token set for this tab")
    try:
        yield tab
    finally:
        context.close()


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking helper that uses asyncio.run outside Playwright's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot of the view."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(worker: WorkerProcess, method: str, path: str, body: Any = None) -> Reply:
    """A request to the worker's JSON API with the token."""
    return http(method, worker.url + path, body, token=TOKEN)


def kafka_automation(automation_id: str, settings: Settings) -> dict[str, Any]:
    """A registry automation whose kafka action the worker completes itself (FINISHED)."""
    return webhook_automation(
        automation_id,
        name=f"Record {automation_id}",
        action={
            "type": "kafka",
            "topic": f"console-out-{settings.app_id}",
            "payload": '{"model": "${artifact_version_string}"}',
        },
    )


def test_root_redirects_to_the_console_which_lists_automations(
    page: Page, worker: WorkerProcess
) -> None:
    """`/` lands on the list of the example automations (the README's path); search and
    the filters narrow it, on the server."""
    examples = load_automations(ROOT / "deploy" / "examples" / "automations.yaml")
    for _, example in examples:
        assert api(worker, "POST", "/automations", stored_json(example)).status == 201
    for n in range(3):
        assert api(worker, "POST", "/automations", webhook_automation(f"listed-{n}")).status == 201
    disabled = webhook_automation("listed-off", enabled=False, event="LINK_ARTIFACT", filter=None)
    assert api(worker, "POST", "/automations", disabled).status == 201
    page.goto(worker.url + "/")
    assert page.url == worker.url + "/console/"
    expect(page.get_by_role("heading", name="Automations")).to_be_visible()
    page.get_by_label("Search").fill("listed")
    expect(page.locator("#count")).to_contain_text("4 automations")
    page.get_by_label("Enabled").select_option("false")
    expect(page.locator("#count")).to_contain_text("1 automation,")
    expect(page.locator("#automations tbody")).to_contain_text("listed-off")
    assert "enabled=false" in page.url
    page.get_by_label("Enabled").select_option("")
    page.get_by_label("Event").select_option("ADD_ARTIFACT_ALIAS")
    expect(page.locator("#count")).to_contain_text("3 automations")
    page.get_by_label("Event").select_option("")
    page.get_by_label("Search").fill("")
    table = page.locator("#automations tbody")
    for _, example in examples:
        expect(table).to_contain_text(example.id)
    shot(page, "list")


def test_create_shows_the_api_validation_error_at_its_field(
    page: Page, worker: WorkerProcess
) -> None:
    """A bad URL comes back at the URL input; corrected, the automation is created."""
    page.get_by_role("link", name="New automation").click()
    page.get_by_label("Id", exact=True).fill("console-created")
    page.get_by_label("Name", exact=True).fill("Created in the console")
    page.get_by_label("Event", exact=True).select_option("ADD_ARTIFACT_ALIAS")
    page.get_by_label("Scope type").select_option("registry")
    page.get_by_label("Entity").fill("acme")
    page.get_by_label("Registry").fill("model")
    page.get_by_label("Filter (JSON)", exact=True).fill('{"alias": "production"}')
    page.get_by_label("Action type").select_option("webhook")
    page.get_by_label("URL").fill("not a url")
    page.get_by_label("Payload").first.fill('{"model": "${artifact_version_string}"}')
    page.get_by_role("button", name="Create").click()
    error = page.locator('.field-error[data-field="action.url"]')
    expect(error).to_contain_text("URL")
    url_input = page.get_by_label("URL")
    expect(url_input).to_have_attribute("aria-invalid", "true")
    # The error is next to its input, inside the same field.
    assert url_input.evaluate(
        "(el) => el.closest('.field').contains(document.querySelector("
        "'.field-error[data-field=\"action.url\"]'))"
    )
    shot(page, "create-error")
    assert api(worker, "GET", "/automations/console-created").status == 404
    url_input.fill("https://ci.example.com/hooks/deploy")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/automations/console-created")
    expect(page.get_by_role("heading", name="Created in the console")).to_be_visible()
    assert api(worker, "GET", "/automations/console-created").json["revision"] == 1


def test_a_run_metric_threshold_automation_is_created_in_the_form_and_listed(
    page: Page, worker: WorkerProcess
) -> None:
    """RUN_METRIC offers the run inputs and only project and entity scopes; the threshold
    filter typed in is stored as the SDK's JSON and the list shows the automation."""
    page.get_by_role("link", name="New automation").click()
    run_fields = page.locator('fieldset[data-events="run"]')
    expect(run_fields).to_be_hidden()
    page.get_by_label("Id", exact=True).fill("console-loss-low")
    page.get_by_label("Name", exact=True).fill("Loss below 0.1")
    page.get_by_label("Event", exact=True).select_option("RUN_METRIC")
    expect(run_fields).to_be_visible()
    scope_type = page.get_by_label("Scope type")
    expect(scope_type.locator("option", has_text="registry")).to_be_disabled()
    scope_type.select_option("project")
    page.get_by_label("Entity").fill("acme")
    page.get_by_label("Project").fill("mnist")
    threshold = {
        "threshold_filter": {
            "name": "loss", "agg_op": "AVERAGE", "window_size": 5, "cmp_op": "$lt",
            "threshold": 0.1,
        }
    }  # fmt: skip
    page.get_by_label("Run metric filter (JSON)").fill(serialization.dumps_str(threshold))
    page.get_by_label("Cooldown (seconds)").fill("60")
    page.get_by_label("Action type").select_option("no_op")
    shot(page, "create-run")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/automations/console-loss-low")
    stored = api(worker, "GET", "/automations/console-loss-low").json
    assert stored["event"] == "RUN_METRIC"
    assert stored["filter"] == {"run_metric_filter": threshold}
    assert stored["cooldown_seconds"] == 60
    page.goto(worker.url + "/console/")
    page.get_by_label("Event").select_option("RUN_METRIC")
    expect(page.locator("#automations tbody")).to_contain_text("console-loss-low")
    expect(page.locator("#automations tbody")).to_contain_text("RUN_METRIC")
    shot(page, "list-run-automation")


def test_edit_in_the_form_saves_a_new_revision(page: Page, worker: WorkerProcess) -> None:
    """The edit page holds the stored automation; a changed name is revision 2."""
    assert api(worker, "POST", "/automations", webhook_automation("edit-me")).status == 201
    page.goto(worker.url + "/console/automations/edit-me")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Id", exact=True)).to_have_value("edit-me")
    expect(page.get_by_label("Id", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Name", exact=True).fill("Edited in the console")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/console/automations/edit-me")
    expect(page.get_by_role("heading", name="Edited in the console")).to_be_visible()
    expect(page.locator("#revision")).to_have_text("2")
    stored = api(worker, "GET", "/automations/edit-me").json
    assert (stored["name"], stored["revision"]) == ("Edited in the console", 2)
    assert stored["filter"] == webhook_automation("edit-me")["filter"]


def test_yaml_editor_names_the_field_and_its_line(page: Page, worker: WorkerProcess) -> None:
    """In YAML the same validation error names the field and the line it is on."""
    page.goto(worker.url + "/console/new?mode=yaml")
    editor = page.get_by_label("The automation, in YAML")
    text = editor.input_value().replace("https://ci.example.com/hooks/deploy", "ftp://nowhere")
    editor.fill(text.replace("my-automation", "yaml-created"))
    page.get_by_role("button", name="Create").click()
    error = page.locator('#yaml-errors li[data-field="action.url"]')
    expect(error).to_contain_text("line 8")
    shot(page, "create-yaml-error")


def test_dry_run_lists_each_reason_and_the_example_matches(
    page: Page, worker: WorkerProcess
) -> None:
    """A pasted event outside the scope gives its reasons; the generated example fires."""
    automation = webhook_automation("dry-run-me", filter={"alias": "production"})
    assert api(worker, "POST", "/automations", automation).status == 201
    page.goto(worker.url + "/console/automations/dry-run-me")
    other = event_dict(entity="other-team", alias="staging")
    page.get_by_label("Event (JSON)").fill(serialization.dumps_str(other))
    page.get_by_role("button", name="Run the dry run").click()
    expect(page.locator("#dry-run-verdict")).to_contain_text("does not fire")
    reasons = page.locator("#dry-run-reasons li")
    expect(reasons.first).to_be_visible()
    text = " ".join(reasons.all_inner_texts())
    assert "other-team" in text, text
    assert "staging" in text, text
    assert reasons.count() >= 2
    shot(page, "dry-run")
    page.get_by_role("button", name="Fill in the generated example").click()
    expect(page.get_by_label("Event (JSON)")).to_have_value(re.compile("example-dry-run-me"))
    page.get_by_role("button", name="Run the dry run").click()
    expect(page.locator("#dry-run-verdict")).to_contain_text("It fires")


def test_a_published_event_appears_on_the_timeline(
    page: Page, worker: WorkerProcess, settings: Settings
) -> None:
    """After POST /events the detail page's chart and executions show the firing."""
    assert api(worker, "POST", "/automations", kafka_automation("timeline", settings)).status == 201
    page.goto(worker.url + "/console/automations/timeline")
    expect(page.locator("#timeline")).to_have_text("No executions yet.")
    event = event_dict(event_id=f"timeline-{uuid.uuid4().hex[:8]}")
    assert api(worker, "POST", "/events", event).status == 202
    expect(page.locator("#counter-matched")).to_have_text("1", timeout=60_000)
    expect(page.locator("#executions tbody")).to_contain_text("FINISHED")
    expect(page.locator("#executions tbody")).to_contain_text(event["event_id"])
    chart = page.locator("#timeline")
    expect(chart.locator("canvas")).to_have_count(1)
    data = serialization.loads(chart.get_attribute("data-timeline") or "{}")
    assert sum(data["firings"]) == 1
    assert sum(data["finished"]) == 1
    # The chart as drawn holds the same series (uPlot's own data).
    drawn = chart.evaluate("(el) => el.uplot.data.slice(1).map((s) => s.reduce((a, b) => a + b))")
    assert drawn == [1, 1, 0]
    shot(page, "detail")


def test_disable_and_enable_with_the_keyboard(page: Page, worker: WorkerProcess) -> None:
    """Tab to the toggle and press Enter: disabled at revision 2, enabled at revision 3."""
    assert api(worker, "POST", "/automations", webhook_automation("toggle-me")).status == 201
    page.goto(worker.url + "/console/automations/toggle-me")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Disable":
            break
    else:
        pytest.fail("the Disable button is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#state")).to_have_text("disabled")
    expect(page.locator("#revision")).to_have_text("2")
    assert api(worker, "GET", "/automations/toggle-me").json["enabled"] is False
    page.get_by_role("button", name="Enable").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#state")).to_have_text("enabled")
    expect(page.locator("#revision")).to_have_text("3")


def test_writes_without_the_token_are_refused_with_the_reason(
    browser: Browser, worker: WorkerProcess
) -> None:
    """No token in the tab: the toggle answers the API's 401 and nothing changes."""
    assert api(worker, "POST", "/automations", webhook_automation("no-token")).status == 201
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        tab.goto(worker.url + "/console/automations/no-token")
        tab.get_by_role("button", name="Disable").click()
        expect(tab.locator("#messages")).to_contain_text("401")
        expect(tab.locator("#messages")).to_contain_text("missing Authorization header")
        # The toggle is still there to try again once a token is typed in.
        expect(tab.get_by_role("button", name="Disable")).to_be_visible()
        assert api(worker, "GET", "/automations/no-token").json["enabled"] is True
        assert TOKEN not in tab.content()
    finally:
        context.close()


def test_dead_letters_show_their_reasons(
    page: Page, worker: WorkerProcess, settings: Settings
) -> None:
    """An event that is not JSON is listed with its code and reason."""
    in_thread(produce_events, settings, settings.registry_events_topic, [b"{this is not json"])
    for _ in range(20):
        page.goto(worker.url + "/console/dead-letters")
        if "not_json" in page.locator("#dead-letters").inner_text():
            break
        page.wait_for_timeout(500)
    expect(page.locator("#dead-letters tbody")).to_contain_text("not_json")
    expect(page.locator("#dead-letters tbody")).to_contain_text("{this is not json")
    shot(page, "dead-letters")


def test_narrow_window_has_no_sideways_scroll(browser: Browser, worker: WorkerProcess) -> None:
    """At 390 px the list and a detail page fit the width (tables scroll inside)."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        assert api(worker, "POST", "/automations", webhook_automation("narrow")).status == 201
        for path in ("/console/", "/console/new", "/console/automations/narrow"):
            tab.goto(worker.url + path)
            width = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert width <= 0, f"{path}: {width}px wider than the window"
        tab.goto(worker.url + "/console/")
        shot(tab, "list-narrow")
    finally:
        context.close()
