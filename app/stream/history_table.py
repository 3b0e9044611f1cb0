"""The `history` Faust table and its agent on `action-results`.

The table is keyed by automation id like `action-results`, with as many partitions,
and only the agent below writes it, to the changelog partition of the record it
folds, so the table stays co-partitioned with `action-results` and `app.router` can
tell which worker holds an automation's history. This is also why the engine does
not write PENDING into the table directly (its events are keyed by collection path,
on other partitions): it produces a PENDING record to `action-results` instead, like
the dispatchers do.

The event path does not wait for this table beyond a restart's tail: Faust resumes a
worker's event partitions (Recovery.on_recovery_completed) only once every table's
active changelog partitions are read up to their highwater, history included. With
the memory store that meant the whole history changelog from offset 0, seconds more
the longer the worker had run; the RocksDB store (Settings.store) keeps the table on
disk with the changelog offset it holds, so a restart reads only what came after,
and the compacted changelog bounds what a worker without the files re-reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from app.core.history import apply_result, empty_history, fit_history, read_result
from app.core.limits import RecordLimits
from app.settings import Settings
from app.stream.context import current_event_of
from app.stream.routed import RoutedTable
from app.stream.topics import raw_topic

__all__ = ["HISTORY_TABLE", "HistoryTable", "define_history", "fold_chunk"]

log = logging.getLogger(__name__)

HISTORY_TABLE = "history"
# A chunk of action results is what arrived within this time, up to this many. Each
# key a chunk changed is one changelog record of up to history_size executions (about
# 20 KB of JSON at 50), so the window bounds those writes to two a second per
# automation: at 0.05 s they took 7% of the worker at 5,000 events/s and its lag grew
# (S3); at 0.5 s it stayed flat. The history shows a firing that much later.
HISTORY_CHUNK = 1000
HISTORY_CHUNK_SECONDS = 0.5


class HistoryTable(RoutedTable):
    """Read side of the `history` table (this worker's partitions only)."""

    def get(self, automation_id: str) -> dict[str, Any]:
        """The history of one automation; empty when it never fired here."""
        value = self.table.get(automation_id)
        if not value:
            return empty_history(automation_id)
        return dict(value)


def define_history(
    app: faust.App, settings: Settings, limits: RecordLimits | None = None
) -> HistoryTable:
    """Create, on the Faust app, the table and the agent that fold `action-results` into it."""
    table = app.Table(
        HISTORY_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        # str keys use the raw codec: the changelog key is the automation id's bytes,
        # as on action-results, so the same partitioner places both. Values use the
        # app's JSON serializer (as the alias table does).
        key_type=str,
        help="automation id -> last executions and counters",
    )
    results = raw_topic(app, settings.action_results_topic, settings.topic_partitions)
    size = settings.history_size
    # A table value is one changelog record: it must fit the changelog's record limit.
    limits = limits or RecordLimits.from_settings(settings)
    max_bytes = limits.budget(settings.history_changelog_topic)

    async def fold_action_results(stream: Any) -> None:
        # Chunks, not one event at a time: a match gives a PENDING and a final record,
        # and Faust's per-event delivery plus one changelog write per record cost the
        # worker ~160 us each (a third of its CPU in S1, docs/benchmarks.md). Each key a
        # chunk changed is written once. take_events acknowledges a chunk when the next
        # is asked for, after its fold; Faust flushes the changelog before committing.
        async for chunk in stream.take_events(HISTORY_CHUNK, HISTORY_CHUNK_SECONDS):
            fold_chunk(table, chunk, size, max_bytes)

    app.agent(results, name="history-action-results", concurrency=1)(fold_action_results)
    return HistoryTable(table, settings.topic_partitions)


def fold_chunk(table: Any, chunk: Sequence[Any], size: int, max_bytes: int | None = None) -> int:
    """Fold a chunk of `action-results` events into the table; return the keys written.

    The table is written like `table[key] = value` does, with the event of the key's
    last record made explicit (take_events does not set Faust's current event): the
    changelog stays co-partitioned with `action-results`, and the store files the
    value under that partition.
    """
    # key -> (the event of its last record, the folded value)
    changed: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    for event in chunk:
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
        pending = changed.get(key)
        current = pending[1] if pending is not None else table.get(key)
        updated = apply_result(current, record, mark, size)
        if updated is not current:
            changed[key] = (event, updated)
    for key, (event, folded) in changed.items():
        value = folded
        if max_bytes is not None:
            value, dropped = fit_history(folded, max_bytes - len(key.encode()))
            if dropped:
                log.warning(
                    "history of %r: %d oldest executions dropped to fit the changelog's "
                    "record limit (%d bytes)",
                    key,
                    dropped,
                    max_bytes,
                )
        table.send_changelog(event.message.partition, key, value)
        # take_events sets no current event (#300); the RocksDB store asserts one and
        # files the write under its partition: the event of the key's last record.
        with current_event_of(event):
            table.data[key] = value
    return len(changed)
