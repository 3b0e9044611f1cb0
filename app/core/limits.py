"""How large a record may be on each topic the worker writes, and the sizes of records.

Kafka refuses a record batch larger than the topic's ``max.message.bytes`` (the broker's
``message.max.bytes``, 1 MiB + 12 bytes, when the topic sets none), and the producer
refuses a record over its ``max_request_size``; either stops the worker. Every record
the worker sends (job, dead letter, state, history) is measured against the budget of
its topic first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.settings import Settings

__all__ = ["KAFKA_DEFAULT_MAX_MESSAGE_BYTES", "RecordLimits", "record_budget", "record_size"]

#: Kafka's default `message.max.bytes` (broker) and `max.message.bytes` (topic).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 + 12


def record_budget(limit: int) -> int:
    """Bytes of key, value and headers a record may carry where batches may be `limit` bytes.

    A batch adds 61 bytes of header and each record up to about 30 of framing, and lz4
    (the worker's compression) can grow data that does not compress by 1/255 plus a few
    bytes: 1 KiB and 1/200 cover both.
    """
    return max(limit - limit // 200 - 1024, 0)


def record_size(
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str | bytes, bytes | None]] | None = None,
) -> int:
    """Bytes of a record's key, value and headers (what `record_budget` bounds)."""
    size = (len(key) if key else 0) + (len(value) if value else 0)
    for name, data in headers or ():
        size += len(name.encode() if isinstance(name, str) else name) + (len(data) if data else 0)
    return size


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """The `max.message.bytes` of each topic the worker writes, and its producer's limit."""

    #: The producer's `max_request_size`: no record may be larger, on any topic.
    producer: int
    #: For a topic not listed (one a `kafka` action names): Kafka's default.
    default: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    topics: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordLimits:
        """What the worker may send, as `hookstream topics create` makes its topics.

        Every topic the worker writes is created with `max.message.bytes` =
        `Settings.max_record_bytes`; a `kafka` action's own topic is assumed to have
        `Settings.kafka_action_max_message_bytes` (Kafka's default).
        """
        written = (
            *settings.action_topics.values(),
            settings.dlq_topic,
            settings.action_results_topic,
            settings.alias_pointers_topic,
            settings.history_changelog_topic,
            settings.run_state_changelog_topic,
        )
        return cls(
            producer=settings.max_record_bytes,
            default=settings.kafka_action_max_message_bytes,
            topics=dict.fromkeys(written, settings.max_record_bytes),
        )

    def with_topics(self, found: Mapping[str, int]) -> RecordLimits:
        """These limits with the ones the broker reports for some topics."""
        return RecordLimits(self.producer, self.default, {**self.topics, **found})

    def limit(self, topic: str) -> int:
        """The largest record batch `topic` takes from this worker."""
        return min(self.topics.get(topic, self.default), self.producer)

    def budget(self, topic: str) -> int:
        """Bytes of key, value and headers one record on `topic` may carry."""
        return record_budget(self.limit(topic))
