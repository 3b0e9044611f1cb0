"""The worker's Faust transport: aiokafka's, with a consumer that reads past undecodable records.

aiokafka decodes every header key of a fetched batch as UTF-8; a key that is not
(Kafka does not check them, so any producer can write one) makes the fetch raise, and
Faust stops the worker, again at the same offset after every restart. The consumer
thread here overrides Faust's ``_fetch_records`` (the one call through which the worker
gets records): when aiokafka raises while decoding, every partition drained by that
call is moved back to where it was before the call (so nothing it had read is lost),
and the partition that failed is fetched once more and decoded by
``app.kafka.records.read_batches``, which keeps an undecodable header key as bytes. The
worker's pipeline turns such a record into a dead letter (``unreadable_header``) and
goes on with the next. Nothing of this runs while batches decode normally.

Seeks run on the consumer thread too: Faust's thread consumer calls aiokafka's ``seek``
from the worker's main thread, where it races the fetcher running on the consumer
thread's loop (workers stopped with a ``KeyError`` in ``Fetcher.fetched_records`` right
after a seek at the end of a rebalance).

Fetched records reach the conductor through ``app.stream.drain`` (Faust's drain loop
without a ``wait_first`` per record where the callback does not wait).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import CorruptRecordException, KafkaError, for_code
from aiokafka.errors import NoError as KafkaNoError
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import Transport as FaustTransport

from app.kafka.records import read_batches
from app.stream.drain import drain_messages

__all__ = ["LenientConsumer", "LenientConsumerThread", "LenientTransport", "install"]

log = logging.getLogger(__name__)

# What aiokafka raises for a batch it cannot decode: its C decoder lets the
# UnicodeDecodeError through, its Python one wraps it in CorruptRecordException.
_DECODE_ERRORS = (UnicodeDecodeError, CorruptRecordException)


def _positions(consumer: Any) -> dict[TopicPartition, int]:
    assignment = consumer._subscription.subscription
    if assignment is None or assignment.assignment is None:
        return {}
    state = assignment.assignment
    out = {}
    for tp in state.tps:
        tp_state = state.state_value(tp)
        if tp_state.has_valid_position:
            out[tp] = tp_state.position
    return out


def _failed_partitions(fetcher: Any) -> list[TopicPartition]:
    """Partitions whose buffered records' iterator died with the decoding error."""
    failed = []
    for tp, result in list(fetcher._records.items()):
        if type(result) is not FetchResult:
            continue
        records = result._partition_records
        iterator = getattr(records, "_records_iterator", None)
        if iterator is not None and getattr(iterator, "gi_frame", 1) is None:
            failed.append(tp)
    return failed


class LenientConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread; a batch aiokafka cannot decode is decoded leniently."""

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        before = _positions(consumer)
        try:
            return await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        except _DECODE_ERRORS as exc:
            failed = _failed_partitions(consumer._fetcher)
            if not failed:
                raise
            tp = failed[0]
            log.warning(
                "%s: a fetched batch could not be decoded (%r): reading it leniently", tp, exc
            )
            # The call returned nothing: every partition it drained goes back to where it was.
            after = _positions(consumer)
            for other, position in before.items():
                if other == tp or after.get(other, position) != position:
                    consumer.seek(other, position)
            return await self._read_leniently(consumer, tp, before.get(tp), max_records)

    async def seek_on_thread(self, partition: Any, offset: int) -> None:
        """aiokafka's seek, run on this thread's loop (see the module docstring)."""
        self._ensure_consumer().seek(partition, offset)

    async def _read_leniently(
        self, consumer: Any, tp: TopicPartition, position: int | None, max_records: int | None
    ) -> dict[TopicPartition, list[Any]]:
        if position is None:
            return {}
        fetcher = consumer._fetcher
        node_id = consumer._client.cluster.leader_for_partition(tp)
        if node_id is None or node_id < 0:
            return {}
        size = max(fetcher._max_partition_fetch_bytes, 1024 * 1024)
        request = FetchRequest(
            0, 1, size, fetcher._isolation_level, [(tp.topic, [(tp.partition, position, size)])]
        )
        records: list[Any] = []
        try:
            response = await consumer._client.send(node_id, request)
        except KafkaError as exc:
            log.warning("%s: the lenient read failed (%r); it is tried again", tp, exc)
            response = None
        for _topic, partitions in response.topics if response is not None else ():
            for partition, error_code, _highwater, *part_data in partitions:
                if partition != tp.partition:
                    continue
                error = for_code(error_code)
                if error is not KafkaNoError:
                    log.warning("%s: the lenient read got %s; it is tried again", tp, error)
                    continue
                records = read_batches(part_data[-1], tp.topic, tp.partition, position)
        if max_records is not None:
            records = records[:max_records]
        # Past what was read, or back to the same position (which also drops the dead
        # buffer aiokafka left): the next fetch goes on from there.
        consumer.seek(tp, records[-1].offset + 1 if records else position)
        return {tp: records} if records else {}


class LenientConsumer(FaustConsumer):
    """Faust's aiokafka consumer with the lenient consumer thread and drain loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # partition -> offset of the record app.stream.drain delivered last; forgotten
        # at every seek, after which Faust's read offset is the next offset to read.
        self.delivered_offsets: dict[Any, int] = {}

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return LenientConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _seek(self, partition: Any, offset: int) -> None:
        # _new_consumer_thread above made it.
        thread = cast(LenientConsumerThread, self._thread)
        await thread.call_thread(thread.seek_on_thread, partition, offset)

    async def seek(self, partition: Any, offset: int) -> None:
        """Faust's seek; the partition's delivered offset is forgotten first."""
        self.delivered_offsets.pop(partition, None)
        await super().seek(partition, offset)

    async def seek_to_committed(self) -> Any:
        """Faust's seek to the committed offsets (perform_seek's); forgets every delivery."""
        self.delivered_offsets.clear()
        return await super().seek_to_committed()

    async def seek_wait(self, partitions: Any) -> None:
        """Faust's seek of several partitions; forgets their deliveries."""
        for partition in partitions:
            self.delivered_offsets.pop(partition, None)
        await super().seek_wait(partitions)

    async def _drain_messages(self, fetcher: Any) -> None:
        # Faust's loop, without its per-record wait_first where the callback does not wait.
        await drain_messages(self, fetcher)


class LenientTransport(FaustTransport):
    """Faust's aiokafka transport with the lenient consumer."""

    Consumer = LenientConsumer


def install(app: Any) -> None:
    """Make `app` consume through the lenient transport (before any topic or agent exists)."""
    app.transport = LenientTransport(app.conf.broker_consumer, app)
