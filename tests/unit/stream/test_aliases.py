"""TableAliasPointers: alias pointers over a (fake) Faust table, changelog sent per batch.

A write reaches the table's store at once, under the writing event as Faust's current
event (noack_take batches have none, faust-streaming #300); ``flush`` sends each
collection changed since the last flush to the changelog once, with the store's value
at that moment, on the partition of the event that last changed it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust

from app.stream.aliases import TableAliasPointers


@dataclass(frozen=True)
class FakeMessage:
    """The part of a Faust message the alias store reads."""

    topic: str
    partition: int
    offset: int


class FakeEvent:
    """A Faust event stand-in (weak-referenceable, as Faust's current event must be)."""

    def __init__(self, partition: int, offset: int = 0) -> None:
        self.message = FakeMessage("registry-events", partition, offset)


class RecordingStore(dict[str, Any]):
    """A table's ``data``: records each write with Faust's current event at that moment."""

    def __init__(self, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self.writes: list[tuple[str, Any, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, value, faust.current_event()))
        super().__setitem__(key, value)


class FakeTable:
    """The three members of a Faust Table that TableAliasPointers uses."""

    def __init__(self, **initial: Any) -> None:
        self.data = RecordingStore(initial)
        self.changelog: list[tuple[int, str, Any]] = []
        self.futures: list[asyncio.Future[None]] = []

    def get(self, key: str) -> Any:
        """Table.get: the stored value or None."""
        return self.data.get(key)

    def send_changelog(self, partition: int, key: str, value: Any) -> asyncio.Future[None]:
        """Record the changelog send and return a future standing for its delivery."""
        self.changelog.append((partition, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


X, Y = "acme/wandb-registry-model/x", "acme/wandb-registry-model/y"


def test_get_reads_the_table() -> None:
    """get() is the table's value; an empty or missing one is None."""
    aliases = TableAliasPointers(FakeTable(**{X: {"latest": 1}, Y: {}}))
    assert aliases.get(X) == {"latest": 1}
    assert aliases.get(Y) is None
    assert aliases.get("acme/none/z") is None


def test_set_writes_the_store_at_once_and_sends_nothing_yet() -> None:
    """A write is read back at once (from the store); no changelog record before flush."""
    table = FakeTable(**{X: {"latest": 1}})
    aliases = TableAliasPointers(table)
    aliases.event = FakeEvent(0)
    aliases.set(X, {"latest": 2})
    assert aliases.get(X) == {"latest": 2}
    assert table.data == {X: {"latest": 2}}
    assert table.changelog == []


def test_store_write_runs_under_the_writing_event() -> None:
    """faust.current_event() is the writing event inside the store write, and restored after."""
    table = FakeTable()
    aliases = TableAliasPointers(table)
    ex, ey = FakeEvent(0), FakeEvent(5)
    assert faust.current_event() is None
    aliases.event = ex
    aliases.set(X, {"latest": 1})
    aliases.event = ey
    aliases.set(Y, {"latest": 1})
    assert [(k, e) for k, _, e in table.data.writes] == [(X, ex), (Y, ey)]
    assert faust.current_event() is None


async def test_flush_sends_once_per_key_on_the_last_writer_partition() -> None:
    """Per changed key: one changelog send, of the store's value, on its last event's partition."""
    table = FakeTable()
    aliases = TableAliasPointers(table)
    aliases.event = FakeEvent(1, 10)
    aliases.set(X, {"latest": 1})
    aliases.event = FakeEvent(3, 11)
    aliases.set(X, {"latest": 2, "production": 2})
    aliases.event = FakeEvent(2, 12)
    aliases.set(Y, {"latest": 7})
    sent = aliases.flush()
    assert table.changelog == [(3, X, {"latest": 2, "production": 2}), (2, Y, {"latest": 7})]
    assert sent == table.futures
    assert len(sent) == 2


async def test_flush_sends_the_store_value_at_flush_time() -> None:
    """A newer value written to the store by another writer since is what the changelog gets."""
    table = FakeTable()
    aliases = TableAliasPointers(table)
    aliases.event = FakeEvent(4)
    aliases.set(X, {"latest": 1})
    table.data[X] = {"latest": 9}  # e.g. the other event agent's write
    aliases.flush()
    assert table.changelog == [(4, X, {"latest": 9})]


async def test_flush_clears_the_batch() -> None:
    """A second flush sends nothing; the value stays in the store."""
    table = FakeTable(**{X: {"latest": 1}})
    aliases = TableAliasPointers(table)
    aliases.event = FakeEvent(0)
    aliases.set(X, {"latest": 4})
    assert len(aliases.flush()) == 1
    assert aliases.flush() == []
    assert len(table.changelog) == 1
    assert aliases.get(X) == {"latest": 4}


def test_flush_with_nothing_changed_sends_nothing() -> None:
    """A batch that changed no alias sends nothing."""
    table = FakeTable(**{X: {"latest": 1}})
    assert TableAliasPointers(table).flush() == []
    assert table.data.writes == []
    assert table.changelog == []
