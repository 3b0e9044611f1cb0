"""app.stream.offsets: partitions without a positive commit are read from their start."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from app.stream.offsets import reseek_uncommitted


class FakeConsumer:
    """The five Faust Consumer calls reseek_uncommitted makes, recorded."""

    def __init__(
        self,
        assigned: set[TP],
        committed: dict[TP, int | None],
        ends: dict[TP, int] | None = None,
    ) -> None:
        self.assigned = assigned
        self.committed = committed
        self.ends = ends or {}
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        """The assigned partitions."""
        return self.assigned

    async def seek_to_committed(self) -> dict[TP, int | None]:
        """Faust's mapping of committed offsets (None: no commit)."""
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        """Log start offsets: 5 everywhere (retention removed the first five)."""
        return dict.fromkeys(tps, 5)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        """End offsets: 9 unless given (four records after the log start)."""
        return {tp: self.ends.get(tp, 9) for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        """Record the seek."""
        self.seeks.append((tp, offset))


async def test_uncommitted_and_zero_partitions_are_sought_to_their_start() -> None:
    """No commit and a commit of 0 are sought to the earliest offset; a real commit is not."""
    none, zero, real = TP("events", 0), TP("events", 1), TP("events", 2)
    other = TP("changelog", 0)
    consumer: Any = FakeConsumer({none, zero, real, other}, {none: None, zero: 0, real: 7})
    sought = await reseek_uncommitted(consumer, {"events"})
    assert sorted(sought) == [none, zero]
    assert sorted(consumer.seeks) == [(none, 5), (zero, 5)]


async def test_nothing_to_do_when_every_partition_has_a_commit() -> None:
    """Committed partitions are left to Faust's own seek."""
    consumer: Any = FakeConsumer({TP("events", 0)}, {TP("events", 0): 3})
    assert await reseek_uncommitted(consumer, {"events"}) == []
    assert consumer.seeks == []


async def test_topics_outside_the_set_are_ignored() -> None:
    """Only the agents' topics are touched (table changelogs are Faust's)."""
    consumer: Any = FakeConsumer({TP("changelog", 0)}, {TP("changelog", 0): None})
    assert await reseek_uncommitted(consumer, {"events"}) == []
    assert consumer.seeks == []


async def test_empty_partitions_are_not_sought() -> None:
    """A partition with nothing in it (end = log start) had nothing skipped: no seek."""
    empty, full = TP("events", 0), TP("events", 1)
    consumer: Any = FakeConsumer({empty, full}, {empty: None, full: None}, ends={empty: 5})
    assert await reseek_uncommitted(consumer, {"events"}) == [full]
    assert consumer.seeks == [(full, 5)]
