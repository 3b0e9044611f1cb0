"""Webhook deliveries already written: the decisions behind cross-worker deduplication.

The ingest view writes each delivery's event with the header ``hookstream-delivery``
(its value: the event id) and records where it went; the event path records every
event carrying that header, keyed by the header's value, and drops one recorded at an
earlier offset (a retry that raced, a producer that retried). Records without the
header are never looked up. Entries expire after a time and a partition keeps at most
a number of them (docs/decisions.md "Webhook deliveries written once").
Pure functions: app.stream.deliveries keeps the entries in a Faust table.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DELIVERY_HEADER",
    "Recorded",
    "delivery_of",
    "is_repeat",
    "to_evict",
    "to_record",
]

#: The Kafka header marking a record as a webhook delivery; its value is the event id.
DELIVERY_HEADER: Final = "hookstream-delivery"
_HEADER_BYTES: Final = DELIVERY_HEADER.encode()


@dataclass(frozen=True, slots=True)
class Recorded:
    """Where a delivery's event was first written, and when it was recorded (unix s)."""

    topic: str
    partition: int
    offset: int
    at: float

    def to_json(self) -> dict[str, Any]:
        """The table value."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: Any) -> Recorded | None:
        """A table value back; None for anything else (a value no version wrote)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                str(value["topic"]),
                int(value["partition"]),
                int(value["offset"]),
                float(value["at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def expired(self, now: float, ttl: float) -> bool:
        """Recorded `ttl` seconds or more before `now`."""
        return now - self.at >= ttl


def delivery_of(
    headers: Iterable[tuple[str | bytes, bytes | None]] | Mapping[str, bytes | None] | None,
) -> str | None:
    """The delivery (event id) a record's headers name, or None when it is no delivery."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key in (DELIVERY_HEADER, _HEADER_BYTES) and value:
            try:
                return bytes(value).decode("utf-8")[:128]
            except UnicodeDecodeError:
                return None
    return None


def is_repeat(
    recorded: Recorded | None, topic: str, offset: int, *, now: float, ttl: float
) -> bool:
    """Whether the record at (`topic`, `offset`) repeats a delivery recorded before it.

    The same offset is the same record processed again (a restart before the commit):
    not a repeat, so its jobs are made again with the same job ids. A delivery first
    written to the other event topic makes this one a repeat too.
    """
    if recorded is None or recorded.expired(now, ttl):
        return False
    return recorded.topic != topic or recorded.offset < offset


def to_record(recorded: Recorded | None, new: Recorded, *, ttl: float) -> Recorded | None:
    """What to store for a delivery written at `new`, or None to keep `recorded`.

    The earliest offset stays: the ingest view and the event path both record, in
    either order, and the event path must then drop the later copy.
    """
    if recorded is None or recorded.expired(new.at, ttl):
        return new
    if recorded.topic == new.topic and new.offset < recorded.offset:
        return new
    return None


def to_evict(
    entries: Iterable[tuple[str, Recorded | None]], *, now: float, ttl: float, cap: int
) -> list[tuple[str, int | None]]:
    """The (key, partition) of entries to delete: expired or unreadable ones, then the
    oldest of each partition past `cap`. An unreadable entry has no partition (None)."""
    out: list[tuple[str, int | None]] = []
    kept: dict[int, list[tuple[float, str]]] = {}
    for key, recorded in entries:
        if recorded is None:
            out.append((key, None))
        elif recorded.expired(now, ttl):
            out.append((key, recorded.partition))
        else:
            kept.setdefault(recorded.partition, []).append((recorded.at, key))
    for partition, live in kept.items():
        if len(live) > cap:
            out.extend((key, partition) for _, key in heapq.nsmallest(len(live) - cap, live))
    return out
