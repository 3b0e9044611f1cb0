"""Alias pointers as a Faust Table, co-partitioned with the event topics.

The table is keyed by collection path, as the events are, with as many partitions, so
Faust's assignor gives a worker changelog partition p with event partition p and
restores it on every rebalance. The event agents work on ``noack_take`` batches,
which carry no current event (faust-streaming #300): each write names its event, so
the store and the changelog get that event's partition. A batch sends each changed
collection to the changelog once, at ``flush``; the batch is acked only once those
records are acknowledged too (app.stream.acks).
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
    Writes reach the store at once, so the other event agent (the table is shared by
    both event topics) reads them; the changelog gets each changed collection once per
    batch, at ``flush``, with its value at that moment.
    """

    __slots__ = ("_pending", "_table", "event")

    def __init__(self, table: Any) -> None:
        self._table = table
        # collection path -> the event that last changed it since the flush.
        self._pending: dict[str, Any] = {}
        self.event: Any = None

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection, or None."""
        value = self._table.get(collection_path)
        return value if value else None

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers in the store; the changelog gets them at ``flush``."""
        event = self.event
        with current_event_of(event):
            # The store only (Table.__setitem__ would also send a changelog record now).
            self._table.data[collection_path] = pointers
        self._pending[collection_path] = event

    def flush(self) -> list[Any]:
        """Send the batch's changed collections to the changelog; return the sends."""
        table = self._table
        data = table.data
        sent = [
            # The current value: newer than this batch's if the other agent changed it
            # since, so the changelog's last record is always the store's value.
            table.send_changelog(event.message.partition, path, data[path])
            for path, event in self._pending.items()
        ]
        self._pending.clear()
        return sent
