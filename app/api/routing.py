"""Which worker holds a key of a partitioned table, and forwarding a request to it.

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
    "forward",
    "forward_get",
    "key_partition",
    "owner_of",
    "owner_url",
    "same_url",
    "this_url",
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


def owner_url(
    app: Any, table: str, changelog_topic: str, partition: int, *, forwarded: bool, what: str
) -> str | None:
    """The URL of the worker holding `partition` of a table; None when it is this one.

    Raises ApiError 503 while the partition has no owner or is moving (`what` names it).
    """
    me = this_url(app)
    owner = owner_of(app.router.table_metadata(table), changelog_topic, partition)
    if owner is None or app.rebalancing:
        raise ApiError(
            503, f"{what} partitions are being (re)assigned; retry", headers={"Retry-After": "1"}
        )
    if same_url(owner, me):
        return None
    if forwarded:
        # The sender thinks we own it and we think it does not: a rebalance is moving it.
        raise ApiError(503, f"{what} partition is moving; retry", headers={"Retry-After": "1"})
    return owner


def this_url(app: Any) -> str:
    """The URL this worker announced to the group (settings.advertised_url)."""
    return str(app.conf.canonical_url).rstrip("/")


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
    return await forward(session, "GET", owner, path_qs, me, timeout, what="history")


async def forward(
    session: aiohttp.ClientSession,
    method: str,
    owner: str,
    path_qs: str,
    me: str,
    timeout: float,
    *,
    what: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Forwarded:
    """Send the request to the worker holding `what`, with the hop header; raises
    ApiError 503 when it does not answer."""
    url = owner.rstrip("/") + path_qs
    sent = {**(headers or {}), FORWARDED_HEADER: me}
    try:
        async with session.request(
            method,
            url,
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            answer = await response.read()
            served_by = response.headers.get(SERVED_BY_HEADER, owner)
            return Forwarded(response.status, answer, served_by)
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ApiError(
            503,
            f"the worker holding this {what} ({owner}) did not answer: {detail}",
            headers={"Retry-After": "1"},
        ) from exc
