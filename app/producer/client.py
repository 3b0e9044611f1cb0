"""AsyncProducer and Producer: publish Hookstream events from an ML platform's code.

Each call builds the event, validates it with the contract models (InvalidEventError
names the field, nothing is sent), produces it to its topic keyed by collection path
(app.core.topics.event_destination) with an idempotent producer (acks=all,
enable_idempotence), and returns once Kafka acknowledged it. Method names follow the
W&B SDK where one fits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from aiokafka import AIOKafkaProducer

from app.contract.events import Event, EventType
from app.core.topics import event_destination, run_destination
from app.kafka.clients import action_producer
from app.producer.events import (
    Place,
    build_event,
    build_run_record,
    validated,
    validated_run,
)
from app.settings import Settings

__all__ = ["AsyncProducer", "Producer", "Published"]

T = TypeVar("T")
# An event's envelope beyond max_event_bytes (record headers, batch framing).
_REQUEST_OVERHEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Published:
    """Where an event went."""

    event_id: str | None  # None: a run record without one (the worker gives it its own)
    event_type: str
    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """Publishes events from asyncio code; `async with AsyncProducer(...) as p:`.

    `entity`, `project`, `registry` and `author` are the defaults of every call (a
    registry without a project gets W&B's `wandb-registry-<name>`); any call may name
    its own as keyword arguments.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        entity: str | None = None,
        project: str | None = None,
        registry: str | None = None,
        author: str | None = None,
        client_id: str = "hookstream-producer",
    ) -> None:
        self.settings = settings or Settings()
        self.place = Place(entity=entity, project=project, registry=registry, author=author)
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect (the first publish does it too)."""
        if self._producer is None:
            producer = action_producer(
                self.settings,
                self._client_id,
                max_request_size=self.settings.max_event_bytes + _REQUEST_OVERHEAD,
            )
            await producer.start()
            self._producer = producer

    async def close(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def publish(
        self, event: Event | Mapping[str, Any], *, topic: str | None = None
    ) -> Published:
        """Validate a whole event (model or contract JSON) and produce it (to `topic`
        instead of its event topic when given)."""
        parsed, raw = validated(event, self.settings.max_event_bytes)
        destination, key = event_destination(self.settings, parsed)
        return await self._send(
            topic or destination, key, raw, parsed.event_id, parsed.event_type.value
        )

    async def _send(
        self, topic: str, key: bytes, raw: bytes, event_id: str | None, event_type: str
    ) -> Published:
        await self.start()
        assert self._producer is not None
        metadata = await self._producer.send_and_wait(topic, raw, key=key)
        return Published(event_id, event_type, topic, metadata.partition, metadata.offset)

    async def _emit(
        self, event_type: EventType, collection: str, version: int, **fields: Any
    ) -> Published:
        return await self.publish(
            build_event(event_type, self.place, collection, version, **fields)
        )

    async def create_artifact(self, collection: str, version: int, **fields: Any) -> Published:
        """CREATE_ARTIFACT: a new version of `collection` (W&B `log_artifact`)."""
        return await self._emit(EventType.CREATE_ARTIFACT, collection, version, **fields)

    async def add_alias(
        self, collection: str, version: int, alias: str, **fields: Any
    ) -> Published:
        """ADD_ARTIFACT_ALIAS: `alias` now points at the version."""
        fields.setdefault("aliases", [alias])
        return await self._emit(
            EventType.ADD_ARTIFACT_ALIAS, collection, version, alias=alias, **fields
        )

    async def remove_alias(
        self, collection: str, version: int, alias: str, **fields: Any
    ) -> Published:
        """REMOVE_ARTIFACT_ALIAS: `alias` no longer points at the version."""
        return await self._emit(
            EventType.REMOVE_ARTIFACT_ALIAS, collection, version, alias=alias, **fields
        )

    async def link_artifact(
        self, collection: str, version: int, source: str, **fields: Any
    ) -> Published:
        """LINK_ARTIFACT: `source` (`entity/project/collection:vN`) was linked into
        `collection` as `version` (W&B `link_artifact`; `aliases=` it was linked with)."""
        return await self._emit(
            EventType.LINK_ARTIFACT, collection, version, source=source, **fields
        )

    async def unlink_artifact(self, collection: str, version: int, **fields: Any) -> Published:
        """UNLINK_ARTIFACT: the version was unlinked from `collection` (W&B `unlink`)."""
        return await self._emit(EventType.UNLINK_ARTIFACT, collection, version, **fields)

    async def add_tag(self, collection: str, version: int, tag: str, **fields: Any) -> Published:
        """ADD_ARTIFACT_TAG: `tag` was added to the version."""
        fields.setdefault("tags", [tag])
        return await self._emit(EventType.ADD_ARTIFACT_TAG, collection, version, tag=tag, **fields)

    async def remove_tag(self, collection: str, version: int, tag: str, **fields: Any) -> Published:
        """REMOVE_ARTIFACT_TAG: `tag` was removed from the version."""
        return await self._emit(
            EventType.REMOVE_ARTIFACT_TAG, collection, version, tag=tag, **fields
        )

    async def publish_run(
        self, record: Mapping[str, Any], *, topic: str | None = None
    ) -> Published:
        """Validate a whole run record (contract "Run events") and produce it."""
        parsed, raw = validated_run(record, self.settings.max_event_bytes)
        destination, key = run_destination(self.settings, parsed)
        return await self._send(topic or destination, key, raw, parsed.event_id, parsed.event_type)

    async def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int, **fields: Any
    ) -> Published:
        """RUN_METRIC: one logged step of `run_id` (W&B `run.log(metrics, step=)`); `run=`
        adds the run's name, user, tags, config."""
        record = build_run_record(
            "RUN_METRIC", self.place, run_id, metrics=dict(metrics), step=step, **fields
        )
        return await self.publish_run(record)

    async def set_run_state(self, run_id: str, state: str, **fields: Any) -> Published:
        """RUN_STATE: `run_id` is now `state` (running, finished, failed, crashed, killed)."""
        record = build_run_record("RUN_STATE", self.place, run_id, state=state, **fields)
        return await self.publish_run(record)


class Producer:
    """The blocking producer: AsyncProducer's methods, each returning once Kafka acked.

    It runs its own event loop, so it is for code without one (scripts, training jobs,
    registry services on threads); asyncio code uses AsyncProducer. `with Producer(...)`.
    """

    def __init__(self, settings: Settings | None = None, **defaults: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = AsyncProducer(settings, **defaults)

    def _run(self, call: Awaitable[T]) -> T:
        return self._loop.run_until_complete(call)

    def close(self) -> None:
        """Flush, disconnect and close the loop."""
        if not self._loop.is_closed():
            self._run(self._async.close())
            self._loop.close()

    def __enter__(self) -> Self:
        self._run(self._async.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish(self, event: Event | Mapping[str, Any], *, topic: str | None = None) -> Published:
        """Validate a whole event (model or contract JSON) and produce it."""
        return self._run(self._async.publish(event, topic=topic))

    def create_artifact(self, collection: str, version: int, **fields: Any) -> Published:
        """CREATE_ARTIFACT (AsyncProducer.create_artifact)."""
        return self._run(self._async.create_artifact(collection, version, **fields))

    def add_alias(self, collection: str, version: int, alias: str, **fields: Any) -> Published:
        """ADD_ARTIFACT_ALIAS (AsyncProducer.add_alias)."""
        return self._run(self._async.add_alias(collection, version, alias, **fields))

    def remove_alias(self, collection: str, version: int, alias: str, **fields: Any) -> Published:
        """REMOVE_ARTIFACT_ALIAS (AsyncProducer.remove_alias)."""
        return self._run(self._async.remove_alias(collection, version, alias, **fields))

    def link_artifact(self, collection: str, version: int, source: str, **fields: Any) -> Published:
        """LINK_ARTIFACT (AsyncProducer.link_artifact)."""
        return self._run(self._async.link_artifact(collection, version, source, **fields))

    def unlink_artifact(self, collection: str, version: int, **fields: Any) -> Published:
        """UNLINK_ARTIFACT (AsyncProducer.unlink_artifact)."""
        return self._run(self._async.unlink_artifact(collection, version, **fields))

    def add_tag(self, collection: str, version: int, tag: str, **fields: Any) -> Published:
        """ADD_ARTIFACT_TAG (AsyncProducer.add_tag)."""
        return self._run(self._async.add_tag(collection, version, tag, **fields))

    def remove_tag(self, collection: str, version: int, tag: str, **fields: Any) -> Published:
        """REMOVE_ARTIFACT_TAG (AsyncProducer.remove_tag)."""
        return self._run(self._async.remove_tag(collection, version, tag, **fields))

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int, **fields: Any
    ) -> Published:
        """RUN_METRIC (AsyncProducer.log_metrics)."""
        return self._run(self._async.log_metrics(run_id, metrics, step, **fields))

    def set_run_state(self, run_id: str, state: str, **fields: Any) -> Published:
        """RUN_STATE (AsyncProducer.set_run_state)."""
        return self._run(self._async.set_run_state(run_id, state, **fields))
