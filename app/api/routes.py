"""The management API's routes on the worker's Faust web server (docs/api.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.api.auth import check_safe_bind
from app.api.console import define_console
from app.api.console.views import RecentDeadLetters
from app.api.dryrun import dry_run_of_request
from app.api.history_view import HistoryView
from app.api.http import ApiContext, ApiView, DeliveryRecords, HistoryReader, read_object
from app.api.ingest_view import EventsView, MlflowIngestView, WandbIngestView
from app.api.openapi import openapi_bytes
from app.api.problems import ApiError
from app.api.query import parse_query, select
from app.api.store import AppliedRules, AutomationStore, Send, WriteResult
from app.api.validation import validate_automation
from app.core.ingest import RecentDeliveries
from app.core.matching import AutomationIndex
from app.core.stored import stored_json
from app.serialization import dumps
from app.settings import Settings

__all__ = ["define_api"]

# The ad-hoc dry run shares the item route: an automation may be called "test" and
# GET /automations/test must still return it (see AutomationView.post).
_ADHOC = "test"


def _write_headers(result: WriteResult) -> dict[str, str]:
    headers: dict[str, str] = {"Hookstream-Outcome": result.outcome}
    if not result.applied:
        # Durable in Kafka, but this worker has not read it back within the wait.
        headers["Hookstream-Applied"] = "false"
    return headers


def _event_bytes(body: dict[str, Any], allowed: frozenset[str]) -> bytes | None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400, f"unknown field {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )
    event = body.get("event")
    return None if event is None else dumps(event)


class AutomationsView(ApiView):
    """/automations: list and create."""

    async def get(self, request: Any) -> Any:
        """List automations (enabled and disabled), filtered by the query string."""
        store = self.ctx.store
        store.ensure_loaded()
        items = select(store.all(), parse_query(request.query))
        return self.reply({"items": [stored_json(a) for a in items], "count": len(items)})

    async def post(self, request: Any) -> Any:
        """Create an automation: 201, 409 when the id exists, 422 naming each bad field."""
        store = self.ctx.store
        store.ensure_loaded()
        result = await store.create(await read_object(request))
        assert result.automation is not None
        headers = {**_write_headers(result), "Location": f"/automations/{result.automation.id}"}
        return self.reply(stored_json(result.automation), status=201, headers=headers)


class AutomationView(ApiView):
    """/automations/{id}: read, replace, patch, delete."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """One automation, or 404."""
        self.ctx.store.ensure_loaded()
        return self.reply(stored_json(self.ctx.store.get(automation_id)))

    async def put(self, request: Any, automation_id: str) -> Any:
        """Replace an automation whole (revision + 1 unless unchanged)."""
        self.ctx.store.ensure_loaded()
        result = await self.ctx.store.replace(automation_id, await read_object(request))
        assert result.automation is not None
        return self.reply(stored_json(result.automation), headers=_write_headers(result))

    async def patch(self, request: Any, automation_id: str) -> Any:
        """JSON Merge Patch, e.g. {"enabled": false} (revision + 1 unless unchanged)."""
        self.ctx.store.ensure_loaded()
        result = await self.ctx.store.patch(automation_id, await read_object(request))
        assert result.automation is not None
        return self.reply(stored_json(result.automation), headers=_write_headers(result))

    async def delete(self, request: Any, automation_id: str) -> Any:
        """Delete (tombstone): 204, or 404."""
        self.ctx.store.ensure_loaded()
        result = await self.ctx.store.delete(automation_id)
        return self.empty(204, headers=_write_headers(result))

    async def post(self, request: Any, automation_id: str) -> Any:
        """POST /automations/test: dry-run an automation given in the body."""
        if automation_id != _ADHOC:
            raise ApiError(405, "POST is allowed on /automations and /automations/test only")
        body = await read_object(request)
        if "automation" not in body:
            raise ApiError(400, "the body needs 'automation' (and optionally 'event')")
        raw = _event_bytes(body, frozenset({"automation", "event"}))
        try:
            automation = validate_automation(body["automation"], self.ctx.settings)
        except ApiError as exc:
            raise exc.prefixed("automation") from None
        return self.reply(dry_run_of_request(automation, raw, self.ctx.settings))


class AutomationTestView(ApiView):
    """/automations/{id}/test: dry-run a stored automation."""

    async def post(self, request: Any, automation_id: str) -> Any:
        """Match and render one event (or a generated example); nothing is emitted."""
        self.ctx.store.ensure_loaded()
        automation = self.ctx.store.get(automation_id)
        body = await read_object(request, empty_ok=True)
        raw = _event_bytes(body, frozenset({"event"}))
        return self.reply(dry_run_of_request(automation, raw, self.ctx.settings))


class OpenApiView(ApiView):
    """/openapi.json: the API's OpenAPI 3.1 document (docs/openapi.json is a copy)."""

    async def get(self, request: Any) -> Any:
        """The document."""
        return self.bytes(openapi_bytes(), content_type="application/json")


_ROUTES: tuple[tuple[str, type[ApiView]], ...] = (
    ("/automations", AutomationsView),
    ("/automations/{automation_id}", AutomationView),
    ("/automations/{automation_id}/test", AutomationTestView),
    ("/automations/{automation_id}/history", HistoryView),
    ("/events", EventsView),
    ("/ingest/mlflow", MlflowIngestView),
    ("/ingest/wandb", WandbIngestView),
    ("/openapi.json", OpenApiView),
)


def _producer_send(app: Any) -> Send:
    async def send(
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> tuple[int, int]:
        metadata = await app.producer.send_and_wait(
            topic, key, value, None, None, list(headers) if headers else None
        )
        return int(metadata.partition), int(metadata.offset)

    return send


def define_api(
    app: Any,
    settings: Settings,
    *,
    index: AutomationIndex,
    rulebook: AppliedRules,
    history: HistoryReader,
    send: Send | None = None,
    dead_letters: RecentDeadLetters | None = None,
    deliveries: DeliveryRecords | None = None,
) -> ApiContext:
    """Refuse an unsafe bind, then register every route on the Faust app's web server.

    ``send`` produces a record and waits for Kafka's acknowledgement; by default the
    app's producer (tests pass a fake, e.g. ``app.testing.RecordingWrites``);
    ``dead_letters`` feeds the console's dead-letter page (by default it reads the topic);
    ``deliveries`` are the webhook deliveries written (the worker's table; without, each
    worker deduplicates in its memory only).
    """
    check_safe_bind(settings)
    if send is None:
        send = _producer_send(app)
    store = AutomationStore(settings, index, rulebook, send)
    ctx = ApiContext(
        settings=settings,
        store=store,
        history=history,
        send=send,
        app=app,
        deliveries=RecentDeliveries(settings.ingest_dedup_seconds),
        delivery_records=deliveries,
    )
    for path, view in _ROUTES:
        # A subclass per worker: two workers in one process (tests) keep their own context.
        bound = type(view.__name__, (view,), {"ctx": ctx, "__doc__": view.__doc__})
        app.page(path, name=f"api-{view.__name__}")(bound)
    define_console(app, ctx, dead_letters=dead_letters)
    return ctx
