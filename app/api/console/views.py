"""The console's pages on the worker's web server, over the management API's own code.

Reads go through the same store, query, history and dry-run functions as the JSON
API; writes through the same `AutomationStore` methods and `ApiView`'s bearer-token
check (the page's script sends the token a person typed in as `Authorization`, so
there is no cookie to forge). Pages are rendered here with Jinja2 (autoescaped);
htmx swaps the fragments a form or a filter asks for (`HX-Request`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2

from app.api.console.forms import (
    ACTION_FIELDS,
    RUN_INPUTS,
    automation_from_form,
    automation_from_yaml,
    form_from_automation,
    input_of,
    yaml_line,
    yaml_of,
)
from app.api.console.timeline import timeline
from app.api.dryrun import dry_run_of_request
from app.api.examples import example_event, example_run_records
from app.api.history_view import read_history
from app.api.http import MAX_BODY_BYTES, ApiView, read_body
from app.api.problems import ApiError
from app.api.query import LIST_PARAMETERS, parse_query, select
from app.api.store import WriteResult
from app.contract.automations import AUTOMATION_EVENT_TYPES, SCOPE_TYPES, scope_types_of
from app.contract.runs import RUN_EVENT_TYPES
from app.core.scopes import scope_fields
from app.core.stored import stored_json
from app.serialization import dumps_str

__all__ = [
    "CONSOLE_PATH",
    "PAGE_SIZE",
    "ROUTES",
    "STATIC_DIR",
    "DeadLetterRow",
    "RecentDeadLetters",
]

CONSOLE_PATH = "/console/"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
DEAD_LETTERS_SHOWN = 50
STATIC_DIR = Path(__file__).parent / "static"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["q"] = lambda value: quote(str(value), safe="")

# What the YAML editor starts from on the create page.
_STARTER_YAML = """\
id: my-automation
name: Tell CI when a model gets the production alias
event: ADD_ARTIFACT_ALIAS
scope: {type: registry, entity: acme, registry: model}
filter: {alias: production}
action:
  type: webhook
  url: https://ci.example.com/hooks/deploy
  payload: '{"model": "${artifact_version_string}"}'
"""

# htmx response headers: a refusal's message goes to the page's message area, and the
# part that asked (a toggle, the history) keeps what it showed. Other clients ignore them.
_TO_MESSAGES = {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML", "HX-Reselect": "#refusal"}

_CONSOLE_PARAMETERS = frozenset({"page", "per_page"})


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One dead letter as the console lists it."""

    failed_at: str
    source: str
    error_code: str
    reason: str
    event_id: str | None
    preview: str


# The newest dead letters, at most `limit` (app.api.console.define_console builds it).
RecentDeadLetters = Callable[[int], Awaitable[list[DeadLetterRow]]]


def _choices() -> dict[str, Any]:
    return {
        "event": [t.value for t in AUTOMATION_EVENT_TYPES],
        "scope_type": list(SCOPE_TYPES),
        # Per event type, the scope types it takes (the form offers only those).
        "scopes_of": {t.value: list(scope_types_of(t)) for t in AUTOMATION_EVENT_TYPES},
        "run_events": sorted(RUN_EVENT_TYPES),
        "action_type": list(ACTION_FIELDS),
        "severity": ["INFO", "WARN", "ERROR"],
    }


class ConsoleView(ApiView):
    """A console page: refusals are HTML, with the API's reason and field errors."""

    def refusal(self, exc: ApiError) -> Any:
        """A page naming the error; htmx puts only its message in the page's message area."""
        headers = {**exc.headers, **_TO_MESSAGES}
        return self.page("error.html", status=exc.status, headers=headers, error=exc.body())

    def page(
        self,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **values: Any,
    ) -> Any:
        """Render a template with what every page needs."""
        body = _ENV.get_template(template).render(
            token_required=self.ctx.settings.api_token is not None,
            choices=_choices(),
            **values,
        )
        return self.html(body, status=status, headers=dict(headers or {}))


def _htmx(request: Any) -> bool:
    return bool(request.headers.get("HX-Request") == "true")


async def _form(request: Any) -> dict[str, str]:
    raw = await read_body(request, MAX_BODY_BYTES)
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _positive(params: Mapping[str, str], name: str, default: int, most: int) -> int:
    raw = params.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"query parameter {name}={raw!r}: expected a positive integer")
    return min(int(raw), most)


class IndexView(ConsoleView):
    """/: the console."""

    async def get(self, request: Any) -> Any:
        """Redirect to the console's automations list."""
        return self.bytes(b"", status=302, headers={"Location": CONSOLE_PATH})


class ListPage(ConsoleView):
    """/console/: the automations, filtered and paginated on the server."""

    async def get(self, request: Any) -> Any:
        """The page, or only its results when htmx asks (a filter changed, a page link)."""
        store = self.ctx.store
        store.ensure_loaded()
        # Empty form fields mean "any"; the rest is the API's own list query.
        params = {k: v for k, v in request.query.items() if v != ""}
        api_params = {k: v for k, v in params.items() if k not in _CONSOLE_PARAMETERS}
        items = select(store.all(), parse_query(api_params))
        per_page = _positive(params, "per_page", PAGE_SIZE, MAX_PAGE_SIZE)
        pages = max(1, math.ceil(len(items) / per_page))
        page = min(_positive(params, "page", 1, 10**9), pages)
        shown = items[(page - 1) * per_page : page * per_page]

        def link(number: int) -> str:
            return CONSOLE_PATH + "?" + urlencode({**params, "page": str(number)})

        values: dict[str, Any] = {
            "rows": [_row(a) for a in shown],
            "total": len(items),
            "page": page,
            "pages": pages,
            "first_shown": (page - 1) * per_page + 1 if shown else 0,
            "last_shown": (page - 1) * per_page + len(shown),
            "previous_url": link(page - 1) if page > 1 else None,
            "next_url": link(page + 1) if page < pages else None,
            "filters": {name: params.get(name, "") for name in LIST_PARAMETERS},
        }
        if _htmx(request) and request.headers.get("HX-Target") == "results":
            return self.page("_results.html", **values)
        return self.page("list.html", **values)


def _row(automation: Any) -> dict[str, Any]:
    scope = scope_fields(automation.scope)
    place = "/".join(
        str(scope[k]) for k in ("entity", "project", "registry", "collection") if scope[k]
    )
    return {
        "id": automation.id,
        "name": automation.name,
        "event": automation.event.value,
        "scope": f"{scope['type']}: {place}",
        "action": automation.action.type,
        "enabled": automation.enabled,
        "revision": automation.revision,
    }


def _detail_url(automation_id: str) -> str:
    return f"{CONSOLE_PATH}automations/{quote(automation_id, safe='')}"


class NewPage(ConsoleView):
    """/console/new: the create form (form or YAML)."""

    async def get(self, request: Any) -> Any:
        """An empty form, enabled, with a webhook action."""
        values = {"enabled": "true", "scope.type": "project", "action.type": "webhook"}
        editor = _editor(values, _STARTER_YAML, None, request.query.get("mode"))
        return self.page("edit.html", **editor)


def _editor(
    values: Mapping[str, str],
    yaml_text: str,
    automation_id: str | None,
    mode: str | None,
    errors: list[dict[str, str]] | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    errors = errors or []
    by_field: dict[str, list[str]] = {}
    for error in errors:
        # A deeper path is shown at its input, naming the rest of the path.
        field, where = error["field"], input_of(error["field"])
        reason = error["reason"] if field == where else f"{field}: {error['reason']}"
        by_field.setdefault(where, []).append(reason)
    lines = {e["field"]: yaml_line(yaml_text, e["field"]) for e in errors} if yaml_text else {}
    return {
        "values": dict(values),
        "yaml_text": yaml_text,
        "automation_id": automation_id,
        "mode": "yaml" if mode == "yaml" else "form",
        "errors": errors,
        "field_errors": by_field,
        "yaml_lines": lines,
        "message": message,
        "action_fields": ACTION_FIELDS,
        # The run inputs are in view for a run event, and when they hold text (an error
        # about them is shown there).
        "run_open": values.get("event") in RUN_EVENT_TYPES
        or any(values.get(name, "").strip() for name in RUN_INPUTS),
        "action_url": _detail_url(automation_id) if automation_id else CONSOLE_PATH + "automations",
    }


class _Writer(ConsoleView):
    """Create and replace from the form or the YAML editor; errors at their fields."""

    async def _submit(
        self,
        request: Any,
        automation_id: str | None,
        write: Callable[[Any], Awaitable[WriteResult]],
    ) -> Any:
        form = await _form(request)
        mode = form.get("mode", "form")
        yaml_text = form.get("yaml", "") if mode == "yaml" else ""
        try:
            data = automation_from_yaml(yaml_text) if mode == "yaml" else automation_from_form(form)
            result = await write(data)
        except ApiError as exc:
            if exc.status != 422:
                raise
            errors = [{"field": f, "reason": r} for f, r in exc.errors] or [
                {"field": "", "reason": exc.reason}
            ]
            values = form if mode == "form" else {}
            editor = _editor(values, yaml_text, automation_id, mode, errors, exc.reason)
            template = "_editor.html" if _htmx(request) else "edit.html"
            return self.page(template, status=422, **editor)
        assert result.automation is not None
        target = _detail_url(result.automation.id)
        if _htmx(request):
            return self.bytes(b"", status=200, headers={"HX-Redirect": target})
        return self.bytes(b"", status=303, headers={"Location": target})


class CreateView(_Writer):
    """POST /console/automations: create."""

    async def post(self, request: Any) -> Any:
        """Create through the API's store; 422 re-renders the editor with the errors."""
        store = self.ctx.store
        store.ensure_loaded()
        return await self._submit(request, None, store.create)


class DetailPage(_Writer):
    """/console/automations/{id}: spec, revision, counters, timeline, executions, dry run."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """The page; the history part loads (and refreshes) on its own."""
        store = self.ctx.store
        store.ensure_loaded()
        automation = store.get(automation_id)
        stored = stored_json(automation)
        return self.page(
            "detail.html",
            automation=stored,
            spec_yaml=yaml_of(stored),
            detail_url=_detail_url(automation_id),
        )

    async def post(self, request: Any, automation_id: str) -> Any:
        """Replace the automation (the edit page's form or YAML)."""
        store = self.ctx.store
        store.ensure_loaded()

        async def replace(data: Any) -> WriteResult:
            return await store.replace(automation_id, data)

        return await self._submit(request, automation_id, replace)


class EditPage(ConsoleView):
    """/console/automations/{id}/edit: the form and the YAML editor, filled in."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """The editor with the stored automation."""
        self.ctx.store.ensure_loaded()
        stored = stored_json(self.ctx.store.get(automation_id))
        editor = _editor(
            form_from_automation(stored), yaml_of(stored), automation_id, request.query.get("mode")
        )
        return self.page("edit.html", **editor)


class EnabledView(ConsoleView):
    """POST /console/automations/{id}/enabled: enable or disable (a merge patch)."""

    async def post(self, request: Any, automation_id: str) -> Any:
        """Patch `enabled` through the store; answers the new toggle."""
        store = self.ctx.store
        store.ensure_loaded()
        wanted = (await _form(request)).get("enabled")
        if wanted not in ("true", "false"):
            raise ApiError(400, "form field enabled: expected true or false")
        result = await store.patch(automation_id, {"enabled": wanted == "true"})
        assert result.automation is not None
        return self.page(
            "_toggle.html",
            automation=stored_json(result.automation),
            detail_url=_detail_url(automation_id),
        )


class HistoryPart(ConsoleView):
    """GET /console/automations/{id}/history: counters, timeline and executions."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """From whichever worker holds the history (the API's routing)."""
        ctx = self.ctx
        ctx.store.ensure_loaded()
        ctx.store.get(automation_id)
        history = await read_history(ctx, automation_id, ctx.settings.history_size)
        executions = history.get("executions") or []
        chart = timeline(executions, datetime.now(UTC))
        return self.page(
            "_history.html",
            counters=history.get("counters") or {},
            executions=executions,
            chart=dumps_str(chart.as_json()),
            chart_rows=[
                (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M"), *counts)
                for t, *counts in chart.rows()
            ],
            step_label=chart.step_label,
        )


class ExamplePart(ConsoleView):
    """GET /console/automations/{id}/example: the generated example event, to edit."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """The dry-run form's event box, filled with the example."""
        self.ctx.store.ensure_loaded()
        automation = self.ctx.store.get(automation_id)
        now = datetime.now(UTC)
        # A run automation's example is a few run records crossing its condition.
        example: Any = (
            example_run_records(automation, now)
            if automation.is_run_automation
            else example_event(automation, now)
        )
        event = dumps_str(example, indent=True)
        return self.page("_event_box.html", event_text=event)


class DryRunPart(ConsoleView):
    """POST /console/automations/{id}/dry-run: the API's dry run, reasons listed."""

    async def post(self, request: Any, automation_id: str) -> Any:
        """An empty event box dry-runs the generated example."""
        self.ctx.store.ensure_loaded()
        automation = self.ctx.store.get(automation_id)
        text = (await _form(request)).get("event", "").strip()
        raw = text.encode() if text else None
        try:
            result = dry_run_of_request(automation, raw, self.ctx.settings)
        except ApiError as exc:
            if exc.status >= 500:
                raise
            return self.page("_dry_run.html", status=exc.status, result=None, error=exc.body())
        return self.page(
            "_dry_run.html",
            result=result,
            error=None,
            job_text=dumps_str(result["job"], indent=True) if result["job"] else "",
        )


class DeadLettersPage(ConsoleView):
    """/console/dead-letters: the newest dead letters of the event topics, with reasons."""

    recent: RecentDeadLetters

    async def get(self, request: Any) -> Any:
        """Read from the dead-letter topic when asked (nothing is kept in memory)."""
        try:
            rows = await self.recent(DEAD_LETTERS_SHOWN)
        except ApiError:
            raise
        except Exception as exc:  # the broker is away: say so on the page
            raise ApiError(503, f"could not read the dead-letter topic: {exc}") from exc
        return self.page(
            "dead_letters.html",
            rows=rows,
            topic=self.ctx.settings.dlq_topic,
            shown=DEAD_LETTERS_SHOWN,
        )


ROUTES: tuple[tuple[str, type[ConsoleView]], ...] = (
    ("/", IndexView),
    (CONSOLE_PATH, ListPage),
    (CONSOLE_PATH + "new", NewPage),
    (CONSOLE_PATH + "automations", CreateView),
    (CONSOLE_PATH + "automations/{automation_id}", DetailPage),
    (CONSOLE_PATH + "automations/{automation_id}/edit", EditPage),
    (CONSOLE_PATH + "automations/{automation_id}/enabled", EnabledView),
    (CONSOLE_PATH + "automations/{automation_id}/history", HistoryPart),
    (CONSOLE_PATH + "automations/{automation_id}/example", ExamplePart),
    (CONSOLE_PATH + "automations/{automation_id}/dry-run", DryRunPart),
    (CONSOLE_PATH + "dead-letters", DeadLettersPage),
)
