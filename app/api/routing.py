"""Which worker holds a key of a partitioned table, and forwarding a GET to it.

Faust's `app.table_route` forwards to the owner too, but it would bounce a request
between two workers whose assignments disagree during a rebalance, has no timeout
of its own, and needs the producer's metadata of the changelog topic. Here the
partition is computed with Kafka's default partitioner (murmur2, what every
producer of `action-results` uses), the owner comes from the assignment Faust
shares in the group (`app.router.table_metadata`), a forwarded request carries a
hop header and is never forwarded again, and a silent owner is a 503, not a hang.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka.partitioner import DefaultPartitioner
from yarl import URL

from app.api.problems import ApiError

__all__ = [
    "FORWARDED_HEADER",
    "SERVED_BY_HEADER",
    "Forwarded",
    "forward_get",
    "key_partition",
    "owner_of",
    "same_url",
]

FORWARDED_HEADER = "Hookstream-Forwarded-By"
SERVED_BY_HEADER = "Hookstream-Served-By"

_PARTITIONER = DefaultPartitioner()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key`."""
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


def owner_of(metadata: Mapping[str, Mapping[str, Any]], topic: str, partition: int) -> str | None:
    """The URL of the worker with `partition` of `topic` active; None while unassigned."""
    for url, topics in metadata.items():
        if partition in (topics.get(topic) or ()):
            return str(url)
    return None


def same_url(a: str, b: str) -> bool:
    """Whether two base URLs name the same host and port."""
    left, right = URL(a), URL(b)
    return (left.host, left.port) == (right.host, right.port)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The owner's answer, passed on as is."""

    status: int
    body: bytes
    served_by: str


async def forward_get(
    session: aiohttp.ClientSession, owner: str, path_qs: str, me: str, timeout: float
) -> Forwarded:
    """GET `path_qs` from the owner; raises ApiError 503 when it does not answer."""
    url = owner.rstrip("/") + path_qs
    try:
        async with session.get(
            url,
            headers={FORWARDED_HEADER: me},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            body = await response.read()
            served_by = response.headers.get(SERVED_BY_HEADER, owner)
            return Forwarded(response.status, body, served_by)
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ApiError(
            503,
            f"the worker holding this history ({owner}) did not answer: {detail}",
            headers={"Retry-After": "1"},
        ) from exc
