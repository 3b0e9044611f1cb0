"""Alias pointers: per-collection rule state, partitioned like the events.

The state is a table in the Kafka Streams sense, kept by the engine (app.engine)
rather than a Faust Table, because the engine consumes the events itself:

- the changelog topic (compacted, as many partitions as the event topics) holds one
  record per collection: key = collection path, value = JSON `{alias: version}`;
- a collection's record goes to the partition of the events that changed it, so the
  worker that owns event partition p holds changelog partition p and nothing else;
- on every assignment the owned partitions are read back from the changelog, and a
  batch's changes are written (once per key) before the batch's offsets are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from app.errors import HookstreamError
from app.kafka_io import read_to_end
from app.serialization import dumps, loads

__all__ = ["AliasPointers", "apply_changelog", "read_changelog"]

log = logging.getLogger(__name__)

Pointers = dict[str, int]


class AliasPointers:
    """The pipeline's AliasStore over the owned partitions; writes are kept until `drain`.

    Set `partition` to the partition of the event before processing it: reads and
    writes go to that partition's state (the events are keyed by collection path).
    """

    __slots__ = ("_parts", "_pending", "partition")

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, Pointers]] = {}
        # (partition, collection path) -> pointers written since the last drain.
        self._pending: dict[tuple[int, str], Pointers] = {}
        self.partition = 0

    @property
    def partitions(self) -> frozenset[int]:
        """Partitions whose state is held."""
        return frozenset(self._parts)

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection in the current partition, or None."""
        part = self._parts.get(self.partition)
        if part is None:
            raise HookstreamError(f"alias pointers of partition {self.partition} are not held")
        value = part.get(collection_path)
        return value if value else None

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers; the changelog gets them at `drain` (last value wins)."""
        part = self._parts.get(self.partition)
        if part is None:
            raise HookstreamError(f"alias pointers of partition {self.partition} are not held")
        part[collection_path] = pointers
        self._pending[(self.partition, collection_path)] = pointers

    def drain(self) -> list[tuple[int, bytes, bytes]]:
        """The changelog records to write: (partition, key, value), one per changed key."""
        # A burst moves `latest` of one collection many times per batch: one record per
        # key instead of one per event.
        out = [(p, path.encode(), dumps(value)) for (p, path), value in self._pending.items()]
        self._pending.clear()
        return out

    def replace(self, parts: Mapping[int, dict[str, Pointers]]) -> None:
        """Hold exactly these partitions' state (after a rebalance)."""
        self._parts = dict(parts)
        self._pending.clear()

    def clear(self) -> None:
        """Hold nothing (partitions revoked)."""
        self._parts = {}
        self._pending.clear()


async def read_changelog(
    bootstrap: str, topic: str, partitions: Iterable[int], *, client_id: str
) -> dict[int, dict[str, Pointers]]:
    """Read changelog partitions from the beginning to their current end."""
    parts: dict[int, dict[str, Pointers]] = {p: {} for p in partitions}
    if parts:
        records = await read_to_end(bootstrap, topic, parts, client_id=client_id)
        for record in records:
            apply_changelog(parts[record.partition], (record,))
    return parts


def apply_changelog(part: dict[str, Pointers], records: Iterable[object]) -> None:
    """Replay changelog records into one partition's state (last value wins)."""
    for record in records:
        key = getattr(record, "key", None)
        value = getattr(record, "value", None)
        if not key:
            continue
        path = bytes(key).decode("utf-8", "replace")
        if value is None:
            part.pop(path, None)
            continue
        try:
            pointers = loads(value)
        except Exception as exc:  # a foreign record must not stop the worker
            log.warning("alias changelog: skipping unreadable record for %r: %r", path, exc)
            continue
        if isinstance(pointers, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in pointers.values()
        ):
            part[path] = {str(k): v for k, v in pointers.items()}
        else:
            log.warning("alias changelog: skipping a record that is not {alias: version}")
