"""Faust tables: per-collection alias pointers beside their events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust

from app.settings import Settings

__all__ = ["TableAliasStore", "define_alias_table"]


def define_alias_table(app: faust.App, settings: Settings) -> Any:
    """The alias-pointer table, keyed like the event topics (collection path).

    Its changelog has as many partitions as the event topics, so each worker holds
    the pointers of exactly the collections whose events it consumes.
    """
    return app.Table(
        "alias-pointers",
        default=None,
        partitions=settings.topic_partitions,
        help="collection path -> {alias: version}",
    )


class TableAliasStore:
    """The pipeline's AliasStore over a Faust table."""

    __slots__ = ("_table",)

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, collection_path: str) -> Mapping[str, int] | None:
        """Alias pointers of one collection, or None."""
        value = self._table.get(collection_path)
        return value if value else None

    def set(self, collection_path: str, pointers: dict[str, int]) -> None:
        """Replace the pointers; assigning (not mutating) writes the changelog."""
        self._table[collection_path] = pointers
