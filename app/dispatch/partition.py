"""One assigned partition of the dispatcher: its in-flight jobs, offsets and pause reasons."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from app.dispatch.tracker import OffsetTracker

__all__ = ["FULL", "NOT_DUE", "AssignedPartition"]

#: Pause reasons: too many jobs in flight; the head of a retry partition is not due yet.
FULL = "full"
NOT_DUE = "not_due"


@dataclass(eq=False)
class AssignedPartition:
    """Bookkeeping of one partition for as long as it stays assigned."""

    tp: TopicPartition
    is_retry: bool
    limit: int
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    paused_for: set[str] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None
    due_timer: asyncio.TimerHandle | None = None
    semaphore: asyncio.Semaphore = field(init=False)
    revoked: bool = False

    def __post_init__(self) -> None:
        """Concurrency within the partition is bounded by `limit`."""
        self.semaphore = asyncio.Semaphore(self.limit)

    @property
    def full(self) -> bool:
        """True when as many jobs are in flight as the limit allows."""
        return len(self.tasks) >= self.limit

    def to_commit(self) -> int | None:
        """The offset to commit now, or None when nothing new is finished."""
        offset = self.tracker.committable()
        if offset is None or (self.committed is not None and offset <= self.committed):
            return None
        return offset

    def cancel_timer(self) -> None:
        """Forget a scheduled resume."""
        if self.due_timer is not None:
            self.due_timer.cancel()
            self.due_timer = None
