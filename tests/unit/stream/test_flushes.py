"""StateFlush: table state to its changelog once per interval; the acks wait on its gate.

Every batch takes the gate of the next flush; the gate opens once Kafka acknowledged
that flush's records (or fails with the refusal). With ``seconds`` 0 each batch flushes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from app.stream.flushes import ChangelogWrite, StateFlush


@dataclass(frozen=True)
class Meta:
    """The part of aiokafka's RecordMetadata the flush reads."""

    partition: int
    offset: int


class Source:
    """Changed keys to collect, and what the flush reported back."""

    def __init__(self) -> None:
        self.changes: list[ChangelogWrite] = []
        self.persisted: list[dict[int, int]] = []
        self.through_table: list[list[ChangelogWrite]] = []

    def collect(self) -> list[ChangelogWrite]:
        """Hand over the changes since the last flush."""
        out, self.changes = self.changes, []
        return out

    def record(self, offsets: dict[int, int]) -> None:
        """Persisted offsets per partition."""
        self.persisted.append(offsets)


class Producer:
    """Direct sends: each returns a future the test resolves (or fails)."""

    def __init__(self) -> None:
        self.sent: list[tuple[ChangelogWrite, asyncio.Future[Meta]]] = []
        self.offset = 0

    async def send(self, partition: int, key: str, value: bytes | None) -> asyncio.Future[Meta]:
        """Queue one record."""
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        self.sent.append(((partition, key, value), fut))
        return fut

    def ack_all(self) -> None:
        """Kafka acknowledges every record sent so far."""
        for (partition, _, _), fut in self.sent:
            if not fut.done():
                self.offset += 1
                fut.set_result(Meta(partition, self.offset))


def direct(source: Source, producer: Producer, seconds: float) -> StateFlush:
    """A flush with direct sends."""
    return StateFlush(
        seconds=seconds, collect=source.collect, persisted=source.record, send=producer.send
    )


async def settle() -> None:
    """Let the flush's send task run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_batches_within_an_interval_share_one_flush() -> None:
    """Two batches inside the interval wait for the same gate; one flush carries both."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0.05)
    source.changes.append((1, "a", b"1"))
    first = flush.after_batch()
    source.changes.append((2, "b", b"2"))
    second = flush.after_batch()
    assert first is second
    assert producer.sent == []
    await asyncio.sleep(0.08)
    assert [write for write, _ in producer.sent] == [(1, "a", b"1"), (2, "b", b"2")]
    assert not first.done()
    producer.ack_all()
    await settle()
    assert first.done()
    assert first.exception() is None
    assert source.persisted == [{1: 1, 2: 2}]


async def test_zero_seconds_flushes_after_each_batch() -> None:
    """seconds=0: each batch's changes are sent at once, each batch with its own gate."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0)
    source.changes.append((0, "a", b"1"))
    first = flush.after_batch()
    await settle()
    assert len(producer.sent) == 1
    source.changes.append((0, "a", b"2"))
    second = flush.after_batch()
    assert second is not first
    await settle()
    assert len(producer.sent) == 2


async def test_gate_opens_with_nothing_to_send() -> None:
    """A flush with no change opens its gate (the batches wait for nothing more)."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0)
    gate = flush.after_batch()
    await settle()
    assert gate.done()
    assert gate.exception() is None
    assert source.persisted == [{}]


async def test_a_refused_record_fails_the_gate() -> None:
    """Kafka refusing a record fails the gate, so the batches behind it are never acked."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0)
    source.changes.append((0, "a", b"1"))
    gate = flush.after_batch()
    await settle()
    producer.sent[0][1].set_exception(RuntimeError("MessageSizeTooLarge"))
    await settle()
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        gate.result()
    assert source.persisted == []


async def test_persisted_is_the_highest_offset_per_partition() -> None:
    """Several records of one partition: the highest acknowledged offset is recorded."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0)
    source.changes.extend([(3, "a", b"1"), (3, "b", b"2"), (1, "c", b"3")])
    flush.after_batch()
    await settle()
    producer.ack_all()
    await settle()
    assert source.persisted == [{3: 2, 1: 3}]


async def test_an_explicit_flush_cancels_the_timer() -> None:
    """flush() (as on revocation) sends at once and the interval's timer does not fire again."""
    source, producer = Source(), Producer()
    flush = direct(source, producer, seconds=0.05)
    source.changes.append((0, "a", b"1"))
    gate = flush.after_batch()
    flush.flush()
    await settle()
    producer.ack_all()
    await settle()
    assert gate.done()
    await asyncio.sleep(0.08)
    assert len(producer.sent) == 1
    assert flush.flushes == 1


async def test_through_table_mode() -> None:
    """Without a direct send the records go through the table; the gate follows their futures."""
    source = Source()
    futures: list[asyncio.Future[Any]] = []

    def through_table(writes: Any) -> list[Any]:
        source.through_table.append(list(writes))
        futures.extend(asyncio.get_running_loop().create_future() for _ in writes)
        return futures

    flush = StateFlush(
        seconds=0, collect=source.collect, persisted=source.record, through_table=through_table
    )
    source.changes.append((0, "a", b"1"))
    gate = flush.after_batch()
    assert source.through_table == [[(0, "a", b"1")]]
    assert not gate.done()
    futures[0].set_result(None)
    await settle()
    assert gate.done()


def test_a_flush_needs_a_way_to_send() -> None:
    """Neither send nor through_table is a programming error, refused at once."""
    source = Source()
    with pytest.raises(ValueError, match="send or through_table"):
        StateFlush(seconds=0, collect=source.collect, persisted=source.record)
