"""A Faust table that API requests are routed to the owner of a partition of."""

from __future__ import annotations

from typing import Any

__all__ = ["RoutedTable"]


class RoutedTable:
    """What app.api.routing needs to find the worker holding a partition of `table`."""

    def __init__(self, table: Any, partitions: int) -> None:
        self.table = table
        self.partitions = partitions

    @property
    def name(self) -> str:
        """The table's name (as app.router knows it)."""
        return str(self.table.name)

    @property
    def changelog_topic(self) -> str:
        """The changelog topic whose partition owners serve the table."""
        return str(self.table.changelog_topic.get_topic_name())
