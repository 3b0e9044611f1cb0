"""HTTP ingest: POST /events (Hookstream's JSON), /ingest/mlflow and /ingest/wandb (webhooks).

Every refusal is a 4xx with the reason (400 not JSON, 401 not authentic, 413 too large,
422 not mappable) and publishes nothing; 503 when Kafka did not take the event, or
while the event's partition has no owner or is moving. A webhook delivery is decided
by the worker owning its event's partition (app.stream.deliveries): a retry reaching
any worker, or arriving after a restart, publishes nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from app.api.events import event_refusal, parse_http_event
from app.api.http import ApiView, read_body
from app.api.problems import ApiError
from app.api.routing import (
    FORWARDED_HEADER,
    SERVED_BY_HEADER,
    forward,
    key_partition,
    owner_url,
    this_url,
)
from app.contract.events import Event
from app.core.cloudevents import from_http as cloudevent_from_http
from app.core.cloudevents import is_cloudevent
from app.core.deliveries import DELIVERY_HEADER
from app.core.ingest import Ingested, mlflow_event, wandb_event
from app.core.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    WANDB_SIGNATURE_HEADER,
    verify_mlflow,
    verify_wandb,
)
from app.core.topics import event_destination
from app.errors import InvalidEventError, SignatureVerificationError

__all__ = ["EventsView", "MlflowIngestView", "WandbIngestView"]

log = logging.getLogger(__name__)

# Not passed on when a delivery is forwarded to the worker owning its partition.
_HOP_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", FORWARDED_HEADER.lower()}
)


class _IngestView(ApiView):
    """What the ingest views share: producing an event where POST /events would."""

    async def publish(
        self, event: Event, raw: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> dict[str, Any]:
        """Produce to the event's topic keyed by collection path; where it went."""
        topic, key = event_destination(self.ctx.settings, event)
        try:
            partition, offset = await self.ctx.send(topic, key, raw, headers)
        except Exception as exc:  # any producer failure: the event was not taken
            raise ApiError(503, f"could not write the event to Kafka: {exc}") from exc
        return {
            "event_id": event.event_id,
            "topic": topic,
            "partition": partition,
            "offset": offset,
        }

    async def publish_once(self, key: str, mapped: Ingested, request: Any, body: bytes) -> Any:
        """Publish a mapped delivery once: 202 with where it went, 200 `duplicate` for a
        repeat, 200 `ignored` for no event. With the deliveries table, the worker owning
        the event's partition decides (the request is forwarded to it)."""
        if mapped.event is None or mapped.raw is None:
            return self.reply({"published": False, "ignored": mapped.ignored})
        ctx = self.ctx
        event = mapped.event
        event_id = event.event_id
        me = this_url(ctx.app)
        records = ctx.delivery_records
        if records is not None:
            _, kafka_key = event_destination(ctx.settings, event)
            owner = owner_url(
                ctx.app,
                records.name,
                records.changelog_topic,
                key_partition(kafka_key, records.partitions),
                forwarded=bool(request.headers.get(FORWARDED_HEADER)),
                what="event",
            )
            if owner is not None:
                return await self.forward_to(owner, request, body)
            if records.seen(event_id):
                return self._duplicate(event_id, me)
        deliveries = ctx.deliveries
        # In flight or published lately by this worker (concurrent retries).
        if not deliveries.claim(key, time.monotonic()):
            return self._duplicate(event_id, me)
        try:
            where = await self.publish(event, mapped.raw, [(DELIVERY_HEADER, event_id.encode())])
        except BaseException:
            deliveries.release(key)
            raise
        if records is not None:
            try:
                await records.record(event_id, where["topic"], where["partition"], where["offset"])
            except Exception as exc:  # the event path records it when it reads the event
                log.warning("delivery %r written but not recorded: %s", event_id, exc)
        return self.reply({"published": True, **where}, status=202, headers={SERVED_BY_HEADER: me})

    def _duplicate(self, event_id: str, me: str) -> Any:
        return self.reply(
            {"published": False, "duplicate": True, "event_id": event_id},
            headers={SERVED_BY_HEADER: me},
        )

    async def forward_to(self, owner: str, request: Any, body: bytes) -> Any:
        """The owner's answer to the same request (its signature headers and body)."""
        ctx = self.ctx
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _HOP_HEADERS
        }
        answer = await forward(
            ctx.app.http_client,
            "POST",
            owner,
            request.path_qs,
            this_url(ctx.app),
            ctx.settings.api_forward_timeout_seconds,
            what="event partition",
            body=body,
            headers=headers,
        )
        return self.bytes(
            answer.body,
            content_type="application/json",
            status=answer.status,
            headers={SERVED_BY_HEADER: answer.served_by},
        )


class EventsView(_IngestView):
    """/events: HTTP ingest for producers that cannot speak Kafka."""

    async def post(self, request: Any) -> Any:
        """Validate like the workers do, produce keyed by collection path: 202."""
        settings = self.ctx.settings
        raw = await read_body(request, settings.max_event_bytes)
        if is_cloudevent(request.headers):
            # CloudEvents binary or structured mode: the event is the data; Kafka gets
            # the plain event, as if it had been posted as one.
            try:
                raw = cloudevent_from_http(request.headers, raw)
            except InvalidEventError as exc:
                raise event_refusal(exc) from None
        event, _ = parse_http_event(raw, settings.max_event_bytes)
        return self.reply(await self.publish(event, raw), status=202)


class _WebhookIngestView(_IngestView):
    """A platform's signed webhook: check the secret is set, read, verify, map, publish once."""

    bearer_auth = False
    secret_setting: ClassVar[str]  # the Settings field holding this endpoint's secret

    async def post(self, request: Any) -> Any:
        """Verify, map (docs/contract.md "Webhook ingest"), publish once per delivery."""
        settings = self.ctx.settings
        secret = getattr(settings, self.secret_setting)
        if secret is None:
            name = f"HOOKSTREAM_{self.secret_setting.upper()}"
            raise ApiError(401, f"no secret configured for this endpoint ({name})")
        raw = await read_body(request, settings.max_event_bytes)
        try:
            key = self.verify(secret.get_secret_value(), request.headers, raw)
        except SignatureVerificationError as exc:
            raise ApiError(401, f"delivery not authentic: {exc.reason}") from None
        try:
            mapped = self.map(raw, key)
        except InvalidEventError as exc:
            raise event_refusal(exc, "delivery not mapped") from None
        return await self.publish_once(key, mapped, request, raw)

    def verify(self, secret: str, headers: Mapping[str, str], raw: bytes) -> str:
        """The delivery's idempotency key; raises SignatureVerificationError."""
        raise NotImplementedError

    def map(self, raw: bytes, key: str) -> Ingested:
        """The delivery as an event (app.core.ingest); raises InvalidEventError."""
        raise NotImplementedError


class MlflowIngestView(_WebhookIngestView):
    """/ingest/mlflow: MLflow 3 webhook deliveries, signed (`X-MLflow-Signature`)."""

    secret_setting = "ingest_mlflow_secret"

    def verify(self, secret: str, headers: Mapping[str, str], raw: bytes) -> str:
        """X-MLflow-Signature over `delivery_id.timestamp.body`, timestamp within 5 minutes;
        the key is the delivery id (fixed across MLflow's retries)."""
        return "mlflow:" + verify_mlflow(secret, headers, raw, tolerance=DEFAULT_TOLERANCE_SECONDS)

    def map(self, raw: bytes, key: str) -> Ingested:
        """MLflow's `{entity, action, timestamp, data}` as an event."""
        settings = self.ctx.settings
        return mlflow_event(
            raw,
            key.removeprefix("mlflow:"),
            received_at=datetime.now(UTC),
            entity=settings.ingest_mlflow_entity,
            registry=settings.ingest_mlflow_registry,
            max_bytes=settings.max_event_bytes,
        )


class WandbIngestView(_WebhookIngestView):
    """/ingest/wandb: a W&B automation's webhook, signed (`X-Wandb-Signature`)."""

    secret_setting = "ingest_wandb_secret"

    def verify(self, secret: str, headers: Mapping[str, str], raw: bytes) -> str:
        """X-Wandb-Signature over the body; W&B sends no delivery id, the body stands for it."""
        verify_wandb(secret, headers.get(WANDB_SIGNATURE_HEADER), raw)
        return f"wandb:{hashlib.sha256(raw).hexdigest()}"

    def map(self, raw: bytes, key: str) -> Ingested:
        """The payload template's fields as an event."""
        settings = self.ctx.settings
        return wandb_event(
            raw,
            received_at=datetime.now(UTC),
            max_bytes=settings.max_event_bytes,
            bucket=int(time.time() // settings.ingest_dedup_seconds),
        )
