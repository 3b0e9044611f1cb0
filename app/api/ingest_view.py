"""POST /events: HTTP ingest, validated like the workers validate Kafka messages."""

from __future__ import annotations

from typing import Any

from app.api.events import parse_http_event
from app.api.http import ApiView, read_body
from app.api.problems import ApiError

__all__ = ["EventsView"]


class EventsView(ApiView):
    """/events: HTTP ingest for producers that cannot speak Kafka."""

    async def post(self, request: Any) -> Any:
        """Validate like the workers do, produce keyed by collection path: 202."""
        settings = self.ctx.settings
        raw = await read_body(request, settings.max_event_bytes)
        event, _ = parse_http_event(raw, settings.max_event_bytes)
        topic = settings.event_topic(registry=event.is_registry_event)
        try:
            partition, offset = await self.ctx.send(topic, event.collection_path.encode(), raw)
        except Exception as exc:  # any producer failure: the event was not taken
            raise ApiError(503, f"could not write the event to Kafka: {exc}") from exc
        return self.reply(
            {
                "event_id": event.event_id,
                "topic": topic,
                "partition": partition,
                "offset": offset,
            },
            status=202,
        )
