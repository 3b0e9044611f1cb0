"""Table state to its changelog once per interval, with the acknowledgements waiting for it.

The agents keep their table state (alias pointers, run windows) decoded in memory and
write a changed key to the store and the changelog once per interval, not once per
change: a collection changed by every event of a catch-up costs one changelog record per
interval. Jobs are not held back; only the acknowledgements are: every batch whose
changes a flush carries appends the flush's *gate* to the records it waits for
(app.stream.acks), and the gate opens once Kafka has acknowledged the flush's records.
A crash before that leaves the batches unacknowledged, so they are processed again over
the state the changelog holds (with the same job ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types import TP

__all__ = ["ChangelogSend", "ChangelogWrite", "StateFlush", "TableState", "flush_on_revoke"]

# (partition, key, value or None for a tombstone) of one changelog record.
ChangelogWrite = tuple[int, str, bytes | None]
# (partition, key, value) -> the future of Kafka's acknowledgement (RecordMetadata).
ChangelogSend = Callable[[int, str, bytes | None], Awaitable[Awaitable[Any]]]


class StateFlush:
    """One table's changelog flushes: every ``seconds``, or after each batch when 0.

    ``collect`` writes the changed keys to the store and returns their changelog
    records; ``send`` produces one record directly (the worker's producer), or, when
    None, ``through_table`` sends them through Faust's producer buffer (Table.send_changelog).
    ``persisted`` records the highest changelog offset acknowledged per partition, as
    Faust's own changelog callback would, so a restart reads only what came after.
    """

    def __init__(
        self,
        *,
        seconds: float,
        collect: Callable[[], list[ChangelogWrite]],
        persisted: Callable[[dict[int, int]], None],
        send: ChangelogSend | None = None,
        through_table: Callable[[Sequence[ChangelogWrite]], list[Any]] | None = None,
    ) -> None:
        if send is None and through_table is None:
            raise ValueError("a StateFlush needs send or through_table")
        self.seconds = seconds
        self._collect = collect
        self._persisted = persisted
        self._send_one = send
        self._through_table = through_table
        # Resolved once the changelog records of the next flush are acknowledged.
        self._gate: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Flushes append their records in order (a later value never overtakes one).
        self._order = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self.flushes = 0

    def after_batch(self) -> asyncio.Future[None]:
        """The gate a batch's acknowledgement waits for (flushing now when ``seconds`` is 0)."""
        gate = self.gate()
        if self.seconds <= 0:
            self.flush()
        return gate

    def gate(self) -> asyncio.Future[None]:
        """The gate of the next flush (created, with its timer, by the first batch after one)."""
        if self._gate is None:
            loop = asyncio.get_running_loop()
            self._gate = loop.create_future()
            if self.seconds > 0:
                self._timer = loop.call_later(self.seconds, self.flush)
        return self._gate

    def flush(self) -> None:
        """Send every key changed since the last flush to the changelog; open the gate after.

        Runs every ``seconds`` (also between two records of a batch: that batch waits
        for the next gate, which holds the rest), and on revocation.
        """
        gate, self._gate = self._gate, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writes = self._collect()
        self.flushes += 1
        if self._send_one is not None:
            task = asyncio.ensure_future(self._send(writes, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        assert self._through_table is not None
        sends = self._through_table(writes)
        if gate is None:
            return
        if not sends:
            gate.set_result(None)
            return
        _open_when(gate, asyncio.gather(*sends))

    async def _send(self, writes: list[ChangelogWrite], gate: asyncio.Future[None] | None) -> None:
        send = self._send_one
        assert send is not None
        try:
            async with self._order:
                futures = [await send(p, key, value) for p, key, value in writes]
            results = await asyncio.gather(*futures)
        except Exception as exc:  # a refused record: the gate fails, and so the acks
            if gate is not None and not gate.done():
                gate.set_exception(exc)
            return
        offsets: dict[int, int] = {}
        for meta in results:
            partition, offset = int(meta.partition), int(meta.offset)
            if offset > offsets.get(partition, -1):
                offsets[partition] = offset
        self._persisted(offsets)
        if gate is not None and not gate.done():
            gate.set_result(None)


def _open_when(gate: asyncio.Future[None], done: asyncio.Future[Any]) -> None:
    """Resolve ``gate`` as ``done`` ends (its failure fails the gate)."""

    def opened(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            gate.cancel()
        elif fut.exception() is not None:
            gate.set_exception(fut.exception())  # type: ignore[arg-type]
        else:
            gate.set_result(None)

    done.add_done_callback(opened)


def flush_on_revoke(app: Any, flush: StateFlush, forget: Callable[[], None]) -> None:
    """On every revocation, send what was changed, then drop the decoded cache.

    Faust restores the tables of the partitions assigned next; the cache would hide that.
    """

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        flush.flush()
        forget()

    app.on_partitions_revoked.connect(on_revoked)


class TableState:
    """What a table's decoded state shares: sending its records and their offsets."""

    __slots__ = ("_table",)

    def __init__(self, table: Any) -> None:
        self._table = table

    def send_through_table(self, writes: Sequence[ChangelogWrite]) -> list[Any]:
        """Send changelog records through Faust's producer buffer (Table.send_changelog)."""
        table = self._table
        return [table.send_changelog(p, key, value) for p, key, value in writes]

    def persisted(self, offsets: dict[int, int]) -> None:
        """Record the changelog offsets written per partition, as Faust's callback would."""
        table = self._table
        topic = table.changelog_topic.get_topic_name()
        for partition, offset in offsets.items():
            table.data.set_persisted_offset(TP(topic, partition), offset)
