"""Records a dispatcher writes, and sending them until Kafka acknowledges every one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.dispatch.delivery_errors import ServiceStoppingError

__all__ = ["Outgoing", "Publisher", "Sent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Sent:
    """Records handed to the producer, with their delivery futures."""

    pairs: list[tuple[Outgoing, asyncio.Future[Any] | BaseException]] = field(default_factory=list)


class Publisher:
    """Produces records and, when Kafka refuses some, sends those again until it takes them."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        running: Callable[[], bool],
        max_backoff: float = 10.0,
    ) -> None:
        self._producer = producer
        self._running = running
        self._max_backoff = max_backoff

    async def enqueue(self, records: Sequence[Outgoing]) -> Sent:
        """Hand records to the producer without waiting for their acknowledgement."""
        sent = Sent()
        for record in records:
            try:
                future = await self._producer.send(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=record.headers or None,
                )
            except KafkaError as exc:
                sent.pairs.append((record, exc))
            else:
                sent.pairs.append((record, future))
        return sent

    async def settle(self, *batches: Sent) -> None:
        """Wait until every record is acknowledged, re-sending failed ones (in order)."""
        pairs = [pair for batch in batches for pair in batch.pairs]
        backoff = 0.5
        while pairs:
            failed: list[Outgoing] = []
            for record, future in pairs:
                if isinstance(future, BaseException):
                    failed.append(record)
                    continue
                try:
                    await future
                except KafkaError as exc:
                    log.warning("producing to %s failed (%s); sending again", record.topic, exc)
                    failed.append(record)
            if not failed:
                return
            if not self._running():
                raise ServiceStoppingError(f"{len(failed)} records not acknowledged")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            pairs = (await self.enqueue(failed)).pairs

    async def send_all(self, records: Sequence[Outgoing]) -> None:
        """Enqueue and settle."""
        await self.settle(await self.enqueue(records))
