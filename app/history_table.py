"""The `history` Faust table, its agent on `action-results`, and the worker's records.

The table is keyed by automation id like `action-results`, with as many partitions,
and only the agent below writes it: Faust writes a table change to the changelog
partition of the message being processed, so the table stays co-partitioned with
`action-results` and `app.router` can tell which worker holds an automation's history.
This is also why the worker does not write PENDING into the table directly (its
events are keyed by collection path, on other partitions): it produces a PENDING
record to `action-results` instead, like the dispatchers do.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.history import AutomationHistory, apply_result, read_result

if TYPE_CHECKING:
    from app.worker import Hookstream

__all__ = ["HISTORY_TABLE", "HistoryTable", "define_history"]

log = logging.getLogger(__name__)

HISTORY_TABLE = "history"


class HistoryTable:
    """Read side of the `history` table (this worker's partitions only)."""

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

    def get(self, automation_id: str) -> dict[str, Any]:
        """The history of one automation; empty when it never fired here."""
        value = self.table.get(automation_id)
        if not value:
            return AutomationHistory(automation_id=automation_id).model_dump(mode="json")
        return dict(value)


def define_history(hs: Hookstream) -> HistoryTable:
    """Create the table and the agent that folds `action-results` into it."""
    settings = hs.settings
    table = hs.app.Table(
        HISTORY_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        # str keys use the raw codec: the changelog key is the automation id's bytes,
        # as on action-results, so the same partitioner places both. Values use the
        # app's JSON serializer (as the alias table does).
        key_type=str,
        help="automation id -> last executions and counters",
    )
    results = hs.app.topic(
        settings.action_results_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    size = settings.history_size

    async def fold_action_results(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            parsed = read_result(message.value, message.headers)
            if parsed is None or not message.key:
                log.warning(
                    "history: skipping unreadable action result at %s[%d]@%d",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                continue
            record, mark = parsed
            # The message key decides the partition, so it is the table key too.
            key = bytes(message.key).decode("utf-8", "replace")
            current = table.get(key)
            updated = apply_result(current, record, mark, size)
            if updated is not current:
                # Assigning (not mutating) is what writes the changelog.
                table[key] = updated

    hs.app.agent(results, name="history-action-results", concurrency=1)(fold_action_results)
    return HistoryTable(table, settings.topic_partitions)
