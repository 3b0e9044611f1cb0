"""Webhook deliveries written, as a Faust Table co-partitioned with the event topics.

Keyed by event id, with a delivery's value on the partition of its event (the event's
key, the collection path, decides it, not the table key): so the worker owning event
partition p holds the deliveries of p, and Faust restores them from the changelog on a
restart or a rebalance. The ingest views route a delivery to that worker, which answers
a repeat `duplicate` (``DeliveryLedger``); its event agents record every event carrying
the delivery header and drop one recorded at an earlier offset (``DeliveryGuard``). As in
app.stream.aliases, each write names its partition (no current event in ``noack_take``
batches, faust-streaming #300). Decisions: app.core.deliveries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from app.core.deliveries import Recorded, delivery_of, is_repeat, to_evict, to_record
from app.stream.context import current_event_of
from app.stream.routed import RoutedTable

__all__ = [
    "DELIVERY_TABLE",
    "PURGE_SECONDS",
    "DeliveryGuard",
    "DeliveryLedger",
    "define_delivery_purge",
    "define_delivery_table",
]

log = logging.getLogger(__name__)

DELIVERY_TABLE = "ingest-deliveries"
# How often expired entries and those past the per-partition cap are deleted.
PURGE_SECONDS = 60.0


def define_delivery_table(app: Any, partitions: int) -> Any:
    """The deliveries table (changelog ``<app id>-ingest-deliveries-changelog``)."""
    return app.Table(
        DELIVERY_TABLE,
        default=None,
        partitions=partitions,
        key_type=str,
        help="event id of a webhook delivery -> where it was first written",
    )


class _At:
    """A stand-in current event naming a partition, for a write outside any event."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _Partition(partition)


class _Partition:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition


class DeliveryLedger(RoutedTable):
    """The deliveries table for the ingest views, the event agents and the purge."""

    def __init__(
        self,
        table: Any,
        dropped: Any,
        *,
        ttl: float,
        cap: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table, int(table.partitions))
        # A Counter labelled by topic: repeats the event path dropped.
        self.dropped = dropped
        self.ttl = ttl
        self.cap = cap
        self.clock = clock

    def get(self, event_id: str) -> Recorded | None:
        """Where the delivery was first written, unless unknown or expired."""
        recorded = Recorded.from_json(self.table.get(event_id))
        if recorded is None or recorded.expired(self.clock(), self.ttl):
            return None
        return recorded

    def seen(self, event_id: str) -> bool:
        """Whether the delivery was written within the expiry."""
        return self.get(event_id) is not None

    async def record(self, event_id: str, topic: str, partition: int, offset: int) -> None:
        """Record a delivery the ingest view wrote; returns once the changelog has it."""
        new = Recorded(topic, partition, offset, self.clock())
        stored = to_record(Recorded.from_json(self.table.get(event_id)), new, ttl=self.ttl)
        if stored is None:
            return
        self.store(event_id, stored)
        await self.table.send_changelog(partition, event_id, stored.to_json())

    def store(self, event_id: str, recorded: Recorded) -> None:
        """The store only, on the record's partition (Table.__setitem__ would also send a
        changelog record now)."""
        with current_event_of(_At(recorded.partition)):
            self.table.data[event_id] = recorded.to_json()

    def purge(self) -> int:
        """Delete expired entries and the oldest past the cap in this worker's active
        partitions, store and changelog; returns how many went."""
        table = self.table
        changelog = self.changelog_topic
        actives = {
            tp.partition for tp in table.app.assignor.assigned_actives() if tp.topic == changelog
        }
        entries = [(key, Recorded.from_json(value)) for key, value in table.data.items()]
        mine = [(k, r) for k, r in entries if r is None or r.partition in actives]
        gone = to_evict(mine, now=self.clock(), ttl=self.ttl, cap=self.cap)
        for key, partition in gone:
            if partition is None:
                # Unreadable: no partition to name, so the store looks in each.
                table.data.pop(key, None)
                continue
            with current_event_of(_At(partition)):
                table.data.pop(key, None)
            # A tombstone, as Table.on_key_del sends it (JSON would write `null`).
            table.send_changelog(partition, key, None, value_serializer="raw")
        return len(gone)


class DeliveryGuard:
    """One event agent's use of the ledger: drop repeats, record deliveries per batch.

    Like app.stream.aliases.TableAliasPointers: the store gets each record at once, the
    changelog at ``flush``, whose sends the batch's acknowledgement waits for.
    """

    __slots__ = ("_pending", "ledger")

    def __init__(self, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        # event id -> its partition, recorded since the flush.
        self._pending: dict[str, int] = {}

    def repeated(self, event: Any) -> bool:
        """True for a delivery recorded at an earlier offset (drop it); records a new one.

        Records without the delivery header are no deliveries: False, nothing read.
        """
        message = event.message
        event_id = delivery_of(message.headers)
        if event_id is None:
            return False
        ledger = self.ledger
        recorded = Recorded.from_json(ledger.table.get(event_id))
        now = ledger.clock()
        topic, offset = message.topic, message.offset
        if is_repeat(recorded, topic, offset, now=now, ttl=ledger.ttl):
            assert recorded is not None
            ledger.dropped.labels(topic).inc()
            log.warning(
                "event %r at %s[%d]@%d dropped: a repeat of the delivery written at %s[%d]@%d",
                event_id,
                topic,
                message.partition,
                offset,
                recorded.topic,
                recorded.partition,
                recorded.offset,
            )
            return True
        new = Recorded(topic, message.partition, offset, now)
        stored = to_record(recorded, new, ttl=ledger.ttl)
        if stored is not None:
            ledger.store(event_id, stored)
            self._pending[event_id] = message.partition
        return False

    def flush(self) -> list[Any]:
        """Send the batch's recorded deliveries to the changelog; return the sends."""
        table = self.ledger.table
        data = table.data
        sent = [
            table.send_changelog(partition, event_id, data[event_id])
            for event_id, partition in self._pending.items()
        ]
        self._pending.clear()
        return sent


def define_delivery_purge(app: Any, ledger: DeliveryLedger, interval: float = PURGE_SECONDS) -> Any:
    """A Faust timer deleting expired deliveries and those past the per-partition cap."""

    async def purge_deliveries() -> None:
        if app.rebalancing:
            return
        gone = ledger.purge()
        if gone:
            log.info("ingest deliveries: %d expired or past the cap deleted", gone)

    return app.timer(interval, name="purge-ingest-deliveries")(purge_deliveries)
