"""AliasPointers: per-partition state, one changelog record per changed key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.errors import HookstreamError
from app.serialization import dumps, loads
from app.tables import AliasPointers, apply_changelog


@dataclass
class Rec:
    """A changelog record (key, value)."""

    key: bytes | None
    value: bytes | None


def test_reads_see_writes_of_the_current_partition_only() -> None:
    """A write on partition 0 is not visible from partition 1."""
    store = AliasPointers()
    store.replace({0: {}, 1: {}})
    store.set("acme/p/c", {"latest": 2})
    assert store.get("acme/p/c") == {"latest": 2}
    store.partition = 1
    assert store.get("acme/p/c") is None


def test_drain_gives_each_changed_key_once_with_its_last_value() -> None:
    """Three writes to one key drain as one record carrying the last pointers."""
    store = AliasPointers()
    store.replace({2: {}})
    store.partition = 2
    for version in (1, 2, 3):
        store.set("acme/p/c", {"latest": version})
    store.set("acme/p/d", {"prod": 1})
    drained = store.drain()
    assert [(p, k, loads(v)) for p, k, v in drained] == [
        (2, b"acme/p/c", {"latest": 3}),
        (2, b"acme/p/d", {"prod": 1}),
    ]
    assert store.drain() == []


def test_a_partition_not_held_is_an_error() -> None:
    """Reading state that was never restored fails loudly instead of answering None."""
    store = AliasPointers()
    store.replace({0: {}})
    store.partition = 3
    with pytest.raises(HookstreamError, match="partition 3"):
        store.get("acme/p/c")


def test_clear_drops_state_and_unwritten_changes() -> None:
    """After a revocation nothing is held and nothing is left to write."""
    store = AliasPointers()
    store.replace({0: {}})
    store.set("acme/p/c", {"latest": 1})
    store.clear()
    assert store.partitions == frozenset()
    assert store.drain() == []


def test_changelog_replay_keeps_the_last_value_and_honours_tombstones() -> None:
    """Later records win, a tombstone deletes, unreadable records are skipped."""
    part: dict[str, dict[str, int]] = {}
    apply_changelog(
        part,
        [
            Rec(b"a", dumps({"latest": 1})),
            Rec(b"a", dumps({"latest": 2})),
            Rec(b"b", dumps({"prod": 1})),
            Rec(b"b", None),
            Rec(b"c", b"not json"),
            Rec(b"d", dumps({"latest": "two"})),
            Rec(None, dumps({"x": 1})),
        ],
    )
    assert part == {"a": {"latest": 2}}
