"""Helpers shared by every test tier: the wait loops.

One home for polling (issue 13, point 4). Each tier used to write its own:
`eventually` (integration API tests), `wait_for` (the rebalance fault test), `until`
(the fault suite, on the event loop) and the functional tier's async `eventually`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually", "until", "wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll `condition` every `every` s until true or `timeout`; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, every: float = 0.2) -> T:
    """The first truthy result of `probe`; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(every)


async def until(predicate: Callable[[], bool], seconds: float, every: float = 0.1) -> bool:
    """Poll without blocking the loop (receivers and agents live on it); the last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(every)
    return predicate()
