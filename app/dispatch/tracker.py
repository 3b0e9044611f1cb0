"""Per-partition offset bookkeeping: commit only the contiguous prefix of finished offsets."""

from __future__ import annotations

from collections import deque

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Offsets taken up in order and finished in any order; `committable` never skips a gap."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self._next: int | None = None

    def __len__(self) -> int:
        """Offsets taken up and not yet finished."""
        return len(self._pending) - len(self._finished)

    def register(self, offset: int) -> None:
        """Take up an offset; offsets must increase."""
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} registered out of order")
        if not self._pending and self._next is not None and offset < self._next:
            raise ValueError(f"offset {offset} is below the committable {self._next}")
        self._pending.append(offset)

    def finish(self, offset: int) -> None:
        """Mark an offset as done (result and follow-ups written)."""
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            done = self._pending.popleft()
            self._finished.discard(done)
            self._next = done + 1

    def committable(self) -> int | None:
        """The offset to commit (next to read): one past the last of the finished prefix."""
        return self._next
