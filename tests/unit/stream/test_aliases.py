"""AliasState and TableAliasPointers: alias pointers over a (fake) Faust table.

Reads are decoded once and cached; a write is read back at once from the cache and
reaches the table's store only at ``flush``, under the writing event as Faust's current
event (noack_take batches have none, faust-streaming #300). ``flush`` returns one
changelog record per collection changed since the last flush, with its value then, on
the partition of the event that last changed it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from app.serialization import dumps
from app.stream.aliases import AliasState, TableAliasPointers


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
        self.reads = 0
        self.persisted: dict[TP, int] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """dict.get, counted."""
        self.reads += 1
        return super().get(key, default)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """What Faust's changelog callback records per partition."""
        self.persisted[tp] = offset

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, value, faust.current_event()))
        super().__setitem__(key, value)


class FakeTable:
    """The three members of a Faust Table that TableAliasPointers uses."""

    def __init__(self, **initial: Any) -> None:
        self.data = RecordingStore({k: dumps(v) for k, v in initial.items()})
        self.changelog_topic = faust.App("t", autodiscover=False).topic("alias-changelog")
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


def pointers(table: FakeTable) -> TableAliasPointers:
    """One agent's view over a fresh shared state."""
    return TableAliasPointers(AliasState(table))


def test_get_reads_the_table_once() -> None:
    """get() is the table's decoded value, read once; an empty or missing one is None."""
    table = FakeTable(**{X: {"latest": 1}, Y: {}})
    aliases = pointers(table)
    assert aliases.get(X) == {"latest": 1}
    assert aliases.get(X) == {"latest": 1}
    assert aliases.get(Y) is None
    assert aliases.get("acme/none/z") is None
    assert aliases.get("acme/none/z") is None
    assert table.data.reads == 3


def test_set_is_read_back_at_once_and_writes_nothing_yet() -> None:
    """A write is read back at once (from the cache); no store write, no changelog before flush."""
    table = FakeTable(**{X: {"latest": 1}})
    aliases = pointers(table)
    aliases.event = FakeEvent(0)
    aliases.set(X, {"latest": 2})
    assert aliases.get(X) == {"latest": 2}
    assert table.data.writes == []
    assert table.changelog == []


def test_both_agents_see_each_others_writes() -> None:
    """The two event agents share one state: a write by one is read by the other at once."""
    state = AliasState(FakeTable())
    registry, artifact = TableAliasPointers(state), TableAliasPointers(state)
    registry.event = FakeEvent(1)
    registry.set(X, {"production": 3})
    assert artifact.get(X) == {"production": 3}


def test_flush_writes_the_store_under_the_last_writing_event() -> None:
    """faust.current_event() is the key's last writer inside the store write, restored after."""
    table = FakeTable()
    state = AliasState(table)
    aliases = TableAliasPointers(state)
    ex, ey, ex2 = FakeEvent(0), FakeEvent(5), FakeEvent(2)
    aliases.event = ex
    aliases.set(X, {"latest": 1})
    aliases.event = ey
    aliases.set(Y, {"latest": 1})
    aliases.event = ex2
    aliases.set(X, {"latest": 2})
    assert faust.current_event() is None
    state.flush()
    assert [(k, e) for k, _, e in table.data.writes] == [(X, ex2), (Y, ey)]
    assert table.data[X] == dumps({"latest": 2})
    assert faust.current_event() is None


def test_flush_returns_one_record_per_key_on_the_last_writer_partition() -> None:
    """Per changed key: one record, its value at flush, on its last writer's partition."""
    state = AliasState(FakeTable())
    aliases = TableAliasPointers(state)
    aliases.event = FakeEvent(1, 10)
    aliases.set(X, {"latest": 1})
    aliases.event = FakeEvent(3, 11)
    aliases.set(X, {"latest": 2, "production": 2})
    aliases.event = FakeEvent(2, 12)
    aliases.set(Y, {"latest": 7})
    assert state.flush() == [
        (3, X, dumps({"latest": 2, "production": 2})),
        (2, Y, dumps({"latest": 7})),
    ]


def test_flush_clears_the_changes() -> None:
    """A second flush returns nothing; the value stays readable and in the store."""
    table = FakeTable(**{X: {"latest": 1}})
    state = AliasState(table)
    aliases = TableAliasPointers(state)
    aliases.event = FakeEvent(0)
    aliases.set(X, {"latest": 4})
    assert len(state.flush()) == 1
    assert state.flush() == []
    assert aliases.get(X) == {"latest": 4}
    assert table.data[X] == dumps({"latest": 4})


def test_flush_with_nothing_changed_writes_nothing() -> None:
    """A batch that changed no alias writes nothing."""
    table = FakeTable(**{X: {"latest": 1}})
    assert AliasState(table).flush() == []
    assert table.data.writes == []


def test_forget_reads_the_table_again() -> None:
    """After a revocation the cache is gone: the table (restored by Faust) is read again."""
    table = FakeTable(**{X: {"latest": 1}})
    state = AliasState(table)
    aliases = TableAliasPointers(state)
    assert aliases.get(X) == {"latest": 1}
    table.data[X] = dumps({"latest": 5})  # e.g. restored from the changelog
    state.forget()
    assert aliases.get(X) == {"latest": 5}


def test_forget_keeps_unflushed_changes() -> None:
    """A change not yet flushed is never dropped by forget (flush_on_revoke flushes first)."""
    state = AliasState(FakeTable())
    aliases = TableAliasPointers(state)
    aliases.event = FakeEvent(0)
    aliases.set(X, {"latest": 1})
    state.forget()
    assert state.flush() == [(0, X, dumps({"latest": 1}))]


def test_cache_is_bounded() -> None:
    """Past max_cached collections the cache starts again after a flush (memory stays bounded)."""
    table = FakeTable(**{f"c/{i}": {"latest": i} for i in range(10)})
    state = AliasState(table, max_cached=4)
    for i in range(10):
        state.get(f"c/{i}")
    assert len(state) == 10
    state.flush()
    assert len(state) == 0
    assert state.get("c/3") == {"latest": 3}


def test_old_json_codec_values_read_the_same() -> None:
    """Values written by Faust's json codec (spaces after separators) decode alike."""
    table = FakeTable()
    table.data[X] = b'{"latest": 3, "production": 2}'
    assert pointers(table).get(X) == {"latest": 3, "production": 2}


async def test_send_through_table_and_persisted() -> None:
    """Records go out through Table.send_changelog; persisted offsets land in the store."""
    table = FakeTable()
    state = AliasState(table)
    sent = state.send_through_table([(2, X, b"{}")])
    assert table.changelog == [(2, X, b"{}")]
    assert sent == table.futures
    state.persisted({2: 41, 0: 7})
    assert table.data.persisted == {TP("alias-changelog", 2): 41, TP("alias-changelog", 0): 7}
