"""The base of every API view: auth on writes, JSON in and out, errors as JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from faust.web import View

from app.api.auth import WRITE_METHODS, check_authorization
from app.api.problems import ApiError
from app.core.ingest import RecentDeliveries
from app.serialization import JSONDecodeError, dumps, loads

if TYPE_CHECKING:
    from app.api.store import AutomationStore, Send
    from app.settings import Settings

__all__ = [
    "MAX_BODY_BYTES",
    "ApiContext",
    "ApiView",
    "DeliveryRecords",
    "HistoryReader",
    "RoutedTableInfo",
    "read_body",
    "read_object",
]

log = logging.getLogger(__name__)

# Automations and dry-run requests; POST /events uses the event size limit instead.
MAX_BODY_BYTES = 1024 * 1024


class RoutedTableInfo(Protocol):
    """A table whose requests go to the worker holding the key's partition."""

    @property
    def name(self) -> str:
        """The table's name, as the Faust router knows it."""
        ...

    @property
    def changelog_topic(self) -> str:
        """The changelog topic whose partition owners serve the table."""
        ...

    @property
    def partitions(self) -> int:
        """Partitions of the table (and of the topic it is co-partitioned with)."""
        ...


class HistoryReader(RoutedTableInfo, Protocol):
    """What the history view needs of the `history` table (app.stream.history_table)."""

    def get(self, automation_id: str) -> dict[str, Any]:
        """One automation's history as this worker holds it."""
        ...


class DeliveryRecords(RoutedTableInfo, Protocol):
    """What the ingest views need of the deliveries table (app.stream.deliveries)."""

    def seen(self, event_id: str) -> bool:
        """Whether this delivery's event was written (and has not expired)."""
        ...

    async def record(self, event_id: str, topic: str, partition: int, offset: int) -> None:
        """Record where the delivery's event was written."""
        ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Everything the views share; built once per worker by app.api.routes.define_api."""

    settings: Settings
    store: AutomationStore
    history: HistoryReader
    # Produce a record and wait for Kafka's acknowledgement: (partition, offset).
    send: Send
    # The Faust app serving the views: its router, canonical URL and HTTP client
    # route a history request to the worker owning the partition.
    app: Any
    # Webhook deliveries this worker published lately (a retry publishes nothing new).
    # Claims concurrent retries of one delivery on the worker owning its partition.
    deliveries: RecentDeliveries = field(default_factory=lambda: RecentDeliveries(900.0))
    # Deliveries written, shared by the group; None: this worker's memory only (tests).
    delivery_records: DeliveryRecords | None = None


async def read_body(request: Any, limit: int) -> bytes:
    """The request body; raises ApiError 413 past `limit` bytes (read no further)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError(413, f"request body is {declared} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the {limit}-byte limit")
        chunks.append(chunk)


async def read_object(request: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; raises ApiError 400 (not JSON, not an object) or 413."""
    raw = await read_body(request, MAX_BODY_BYTES)
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        data = loads(raw)
    except JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(data).__name__}")
    return data


class ApiView(View):
    """A Faust view answering JSON; writes need the bearer token."""

    ctx: ClassVar[ApiContext]
    # Webhook ingest views authenticate by the sender's signature instead of the token.
    bearer_auth: ClassVar[bool] = True

    async def dispatch(self, request: Any) -> Any:
        """Check auth on writes, run the handler, turn ApiError into a JSON answer."""
        try:
            if self.bearer_auth and request.method in WRITE_METHODS:
                check_authorization(
                    request.headers.get("Authorization"),
                    self.ctx.settings.api_token,
                    remote=request.remote,
                )
            return await super().dispatch(request)
        except ApiError as exc:
            return self.refusal(exc)
        except Exception:  # a bug must answer 500 with JSON, not kill the connection
            log.exception("%s %s failed", request.method, request.path)
            return self.refusal(ApiError(500, "internal error; the worker log has the details"))

    def refusal(self, exc: ApiError) -> Any:
        """The answer to a refused request: JSON here (the console answers HTML)."""
        return self.reply(exc.body(), status=exc.status, headers=exc.headers)

    def reply(
        self, value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Any:
        """A JSON response (orjson, like every other JSON of Hookstream)."""
        return self.bytes(
            dumps(value),
            content_type="application/json",
            status=status,
            headers=dict(headers or {}),
        )

    def empty(self, status: int = 204, headers: Mapping[str, str] | None = None) -> Any:
        """A response without a body."""
        return self.bytes(b"", status=status, headers=dict(headers or {}))
