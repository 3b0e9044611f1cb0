"""Alias pointers as a Faust Table, co-partitioned with the event topics.

The table is keyed by collection path, as the events are, with as many partitions, so
Faust's assignor gives a worker changelog partition p with event partition p and
restores it on every rebalance. The event agent works on ``noack_take`` batches,
which carry no current event (faust-streaming #300): each write names its event, so
the store and the changelog get that event's partition. A batch writes each changed
collection once, at ``flush``; the batch is acked only once those changelog records
are acknowledged too (app.stream.acks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.stream.context import current_event_of

__all__ = ["ALIAS_TABLE", "TableAliasPointers", "define_alias_table"]

ALIAS_TABLE = "alias-pointers"


def define_alias_table(app: Any, partitions: int) -> Any:
    """The alias-pointer table (changelog ``<app id>-alias-pointers-changelog``)."""
    return app.Table(
        ALIAS_TABLE,
        default=None,
        partitions=partitions,
        # Each write names its partition (the event's), so the key codec (JSON for
        # str keys) does not decide placement.
        key_type=str,
        help="collection path -> {alias: version}",
    )


class TableAliasPointers:
    """The pipeline's AliasStore over the alias table, for one agent's batches.

    Set ``event`` to the Faust event being processed before calling the pipeline.
    """

    __slots__ = ("_pending", "_table", "event")

    def __init__(self, table: Any) -> None:
        self._table = table
        # collection path -> (event that last changed it, its pointers) since the flush.
        self._pending: dict[str, tuple[Any, dict[str, int]]] = {}
        self.event: Any = None

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection, or None."""
        pending = self._pending.get(collection_path)
        if pending is not None:
            return pending[1]
        value = self._table.get(collection_path)
        return value if value else None

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers; the store and changelog get them at ``flush``."""
        self._pending[collection_path] = (self.event, pointers)

    def flush(self) -> list[Any]:
        """Write the batch's changes to the store and the changelog; return the sends."""
        table = self._table
        sent = []
        for path, (event, pointers) in self._pending.items():
            with current_event_of(event):
                # The store only; the changelog record is sent below with its future.
                table.data[path] = pointers
            sent.append(table.send_changelog(event.message.partition, path, pointers))
        self._pending.clear()
        return sent
