"""A lenient reader of Kafka record batches: a header key that is not UTF-8 stays bytes.

Kafka does not validate header keys, but aiokafka decodes every key of a fetched batch
as UTF-8 and raises ``UnicodeDecodeError`` (its C decoder) or
``CorruptRecordException`` (its Python one) for the whole batch, so one such record
would stop a consumer on every fetch. ``read_batches`` decodes the fetched bytes
itself (record batch format v2, the one Kafka writes since 0.11): keys and values as
bytes, header keys as ``str`` when they are UTF-8 and as the raw ``bytes`` when not.
Only the worker's recovery path (app.stream.transport) calls it, for the batch that
aiokafka could not read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.errors import CorruptRecordException
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import decode_varint
from aiokafka.structs import ConsumerRecord

__all__ = ["RawHeaders", "read_batches"]

RawHeaders = list[tuple[str | bytes, bytes | None]]

# BaseOffset, Length, PartitionLeaderEpoch, Magic, CRC, Attributes, LastOffsetDelta,
# FirstTimestamp, MaxTimestamp, ProducerId, ProducerEpoch, BaseSequence, RecordCount.
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12  # BaseOffset + Length
_MAGIC_AT = 16
_CODECS: dict[int, Callable[[bytes], bytes]] = {
    1: gzip_decode,
    2: snappy_decode,
    3: lz4_decode,
    4: zstd_decode,
}
_TIMESTAMP_TYPE = 0x08
_CONTROL = 0x20
_LOG_APPEND_TIME = 1


def _nullable(buffer: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = decode_varint(buffer, pos)
    if length < 0:
        return None, pos
    return buffer[pos : pos + length], pos + length


def _header_key(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _records_v2(
    batch: bytes, topic: str, partition: int, start: int
) -> list[ConsumerRecord[bytes, bytes]]:
    (base, _, _, _, _, attributes, _, first_ts, max_ts, _, _, _, count) = _BATCH_HEADER.unpack_from(
        batch
    )
    if attributes & _CONTROL:
        return []
    body = batch[_BATCH_HEADER.size :]
    codec = attributes & 0x07
    if codec:
        decode = _CODECS.get(codec)
        if decode is None:
            raise CorruptRecordException(f"unknown compression codec {codec}")
        body = decode(body)
    timestamp_type = 1 if attributes & _TIMESTAMP_TYPE else 0
    out: list[ConsumerRecord[bytes, bytes]] = []
    pos = 0
    for _ in range(count):
        length, pos = decode_varint(body, pos)
        end = pos + length
        pos += 1  # attributes (unused)
        ts_delta, pos = decode_varint(body, pos)
        offset_delta, pos = decode_varint(body, pos)
        key, pos = _nullable(body, pos)
        value, pos = _nullable(body, pos)
        header_count, pos = decode_varint(body, pos)
        headers: RawHeaders = []
        for _ in range(max(header_count, 0)):
            key_len, pos = decode_varint(body, pos)
            h_key = _header_key(body[pos : pos + key_len])
            pos += key_len
            h_value, pos = _nullable(body, pos)
            headers.append((h_key, h_value))
        if pos != end:
            raise CorruptRecordException(f"record of {length} bytes read as {length + pos - end}")
        offset = base + offset_delta
        if offset < start:
            continue
        timestamp = max_ts if timestamp_type == _LOG_APPEND_TIME else first_ts + ts_delta
        out.append(
            ConsumerRecord(
                topic,
                partition,
                offset,
                timestamp,
                timestamp_type,
                key,
                value,
                None,
                -1 if key is None else len(key),
                -1 if value is None else len(value),
                # aiokafka types header keys as str; a bytes key is the unreadable one.
                tuple(headers),
            )
        )
    return out


def read_batches(
    data: bytes, topic: str, partition: int, start: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records at offset `start` and after in fetched bytes (a partial last batch is left)."""
    out: list[ConsumerRecord[bytes, bytes]] = []
    pos = 0
    while len(data) - pos > _MAGIC_AT:
        (length,) = struct.unpack_from(">i", data, pos + 8)
        end = pos + _LOG_OVERHEAD + length
        if end > len(data):
            break
        batch = bytes(data[pos:end])
        if batch[_MAGIC_AT] >= 2:
            out.extend(_records_v2(batch, topic, partition, start))
        else:
            # Message formats 0 and 1 carry no headers: aiokafka reads them as they are.
            legacy = MemoryRecords(batch).next_batch()
            for record in legacy or ():
                if record.offset >= start:
                    out.append(
                        ConsumerRecord(
                            topic,
                            partition,
                            record.offset,
                            record.timestamp or 0,
                            record.timestamp_type or 0,
                            record.key,
                            record.value,
                            None,
                            -1 if record.key is None else len(record.key),
                            -1 if record.value is None else len(record.value),
                            (),
                        )
                    )
        pos = end
    return out
