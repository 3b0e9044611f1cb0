"""Alias pointers as a Faust Table, co-partitioned with the event topics.

The table is keyed by collection path, as the events are, with as many partitions, so
Faust's assignor gives a worker changelog partition p with event partition p and
restores it on every rebalance. Each value is the collection's ``{alias: version}`` as
JSON bytes.

Both event agents share one ``AliasState``: the decoded pointers of the collections in
use, read from the table once, and the collections changed since the last flush. A
flush (app.stream.flushes, every ``alias_flush_seconds``) writes each changed collection
to the store and to the changelog once, on the partition of the event that last changed
it: the agents work on ``noack_take`` batches, which carry no current event
(faust-streaming #300), so each write names its event. The batches wait for that flush
before they are acknowledged. The cache is dropped when partitions are revoked: the
table, which Faust restores, is then read again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.serialization import dumps, loads
from app.stream.context import current_event_of
from app.stream.flushes import ChangelogWrite, TableState

__all__ = ["ALIAS_TABLE", "AliasState", "TableAliasPointers", "define_alias_table"]

ALIAS_TABLE = "alias-pointers"

# Decoded collections kept between flushes; past this the cache starts again from the
# table (S4 keeps the worker's memory bounded whatever the number of collections).
MAX_CACHED = 20_000


def define_alias_table(app: Any, partitions: int) -> Any:
    """The alias-pointer table (changelog ``<app id>-alias-pointers-changelog``)."""
    return app.Table(
        ALIAS_TABLE,
        default=None,
        partitions=partitions,
        # Each write names its partition (the event's), so the key codec (JSON for
        # str keys) does not decide placement.
        key_type=str,
        # bytes values use the raw codec: the pointers' JSON as written here (the
        # records of Faust's json codec read the same).
        value_type=bytes,
        help="collection path -> {alias: version}",
    )


class AliasState(TableState):
    """The alias pointers the event agents share (see the module docstring)."""

    __slots__ = ("_cache", "_pending", "max_cached")

    def __init__(self, table: Any, max_cached: int = MAX_CACHED) -> None:
        super().__init__(table)
        self._cache: dict[str, Mapping[str, int]] = {}
        # collection path -> the event that last changed it since the flush.
        self._pending: dict[str, Any] = {}
        self.max_cached = max_cached

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection (cached, or read from the table), or None."""
        pointers = self._cache.get(collection_path)
        if pointers is None:
            raw = self._table.data.get(collection_path)
            pointers = _decode(raw)
            self._cache[collection_path] = pointers
        return pointers if pointers else None

    def put(self, collection_path: str, pointers: dict[str, int], event: Any) -> None:
        """The pointers changed under ``event``: cached; the table gets them at ``flush``."""
        self._cache[collection_path] = pointers
        self._pending[collection_path] = event

    def flush(self) -> list[ChangelogWrite]:
        """Write the changed collections to the store; return their changelog records."""
        data = self._table.data
        cache = self._cache
        writes: list[ChangelogWrite] = []
        for path, event in self._pending.items():
            value = dumps(cache[path])
            with current_event_of(event):
                # The store only (Table.__setitem__ would send a changelog record itself).
                data[path] = value
            writes.append((event.message.partition, path, value))
        self._pending.clear()
        if len(cache) > self.max_cached:
            cache.clear()
        return writes

    def forget(self) -> None:
        """Drop the cache (partitions were revoked: the table is the truth again)."""
        if not self._pending:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


class TableAliasPointers:
    """The pipeline's AliasStore over the shared AliasState, for one agent's batches.

    Set ``event`` to the Faust event being processed before calling the pipeline.
    """

    __slots__ = ("event", "state")

    def __init__(self, state: AliasState) -> None:
        self.state = state
        self.event: Any = None

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection, or None."""
        return self.state.get(collection_path)

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers; the store and changelog get them at the next flush."""
        self.state.put(collection_path, pointers, self.event)


def _decode(raw: Any) -> Mapping[str, int]:
    """A stored value: JSON bytes (or a dict, from a table without a bytes codec)."""
    if not raw:
        return {}
    if isinstance(raw, Mapping):
        return raw
    value = loads(raw)
    return value if isinstance(value, dict) else {}
