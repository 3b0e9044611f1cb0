"""The run-events agent and the run-state Faust table, co-partitioned with run-events.

The table (``run-state``, changelog ``<app id>-run-state-changelog``) is keyed by run
path like ``run-events``, with as many partitions, so Faust's assignor gives a worker
changelog partition p with run-events partition p and restores it on every rebalance.
Each value is one run's ``RunMemory`` as JSON bytes.

The agent follows app.stream.agents: concurrency 1 (faust-streaming #606), ``noack_take``
batches, every job, dead letter and changelog record of a batch queued on the producer,
and the batch acked by ``OrderedAcks`` once Kafka acknowledged all of them. Each firing
also gets its execution-history record on ``action-results`` (app.core.history). Batches carry
no current event (faust-streaming #300): each table write names the record it folds
(``current_event_of``), so the store and the changelog get that record's partition.

Decoded memories are cached between batches; a batch writes each changed run to the
store and the changelog once, at ``flush``. The cache is dropped when partitions are
revoked: the table, which Faust restores, is then read again. A SIGKILL between the
changelog and the commit leaves memories ahead of the committed offset; the records read
again are then replays (app.core.run_pipeline), which repeat their firings' job ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.core.history import run_execution_records
from app.core.run_pipeline import RunPipeline, RunResult
from app.core.run_windows import RunMemory
from app.stream.acks import OrderedAcks
from app.stream.agents import BATCH_MAX, BATCH_SECONDS, Send, agent_name
from app.stream.context import current_event_of
from app.stream.flushes import (
    ChangelogSend,
    ChangelogWrite,
    StateFlush,
    TableState,
    flush_on_revoke,
)
from app.stream.metrics import WorkerMetrics

__all__ = [
    "RUN_STATE_TABLE",
    "RunPath",
    "TableRunStore",
    "define_run_agent",
    "define_run_table",
]

log = logging.getLogger(__name__)

RUN_STATE_TABLE = "run-state"


def define_run_table(app: Any, partitions: int) -> Any:
    """The run-state table (changelog ``<app id>-run-state-changelog``)."""
    return app.Table(
        RUN_STATE_TABLE,
        default=None,
        partitions=partitions,
        key_type=str,
        # bytes values use the raw codec: the RunMemory JSON as written (app.core.run_windows).
        value_type=bytes,
        help="run path -> the run's metric windows and firing state",
    )


class TableRunStore(TableState):
    """The run pipeline's RunStore over the run-state table, for one agent's batches.

    Set ``event`` to the Faust event being processed before calling the pipeline.
    """

    __slots__ = ("_cache", "_pending", "event")

    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self._cache: dict[str, RunMemory] = {}
        # run path -> (the event that last changed it, its memory) since the flush.
        self._pending: dict[str, tuple[Any, RunMemory]] = {}
        self.event: Any = None

    def get(self, run_path: str) -> RunMemory | None:
        """The memory of one run: cached, or read from the table."""
        memory = self._cache.get(run_path)
        if memory is not None:
            return memory
        raw = self._table.data.get(run_path)
        if not raw:
            return None
        memory = RunMemory.from_bytes(raw)
        self._cache[run_path] = memory
        return memory

    def put(self, run_path: str, memory: RunMemory) -> None:
        """The memory changed: kept in the cache; the table gets it at ``flush``."""
        self._cache[run_path] = memory
        self._pending[run_path] = (self.event, memory)

    def flush(self) -> list[ChangelogWrite]:
        """Write the changed runs to the store; return their changelog records to send."""
        data = self._table.data
        writes: list[ChangelogWrite] = []
        for path, (event, memory) in self._pending.items():
            partition = memory.partition = event.message.partition
            value = memory.to_bytes()
            with current_event_of(event):
                # The store only (Table.__setitem__ would send a changelog record itself).
                data[path] = value
            writes.append((partition, path, value))
        self._pending.clear()
        return writes

    def expire(self, now: float, retention: float) -> list[ChangelogWrite]:
        """Delete runs that ended more than ``retention`` seconds ago; return the tombstones."""
        data = self._table.data
        writes: list[ChangelogWrite] = []
        for path, raw in list(data.items()):
            memory = self._cache.get(path) or RunMemory.from_bytes(raw)
            ended = memory.ended_at
            if ended is None or now - ended <= retention or path in self._pending:
                continue
            self._cache.pop(path, None)
            del data[path]
            if memory.partition >= 0:
                writes.append((memory.partition, path, None))
        return writes

    def forget(self) -> None:
        """Drop the cache (partitions were revoked: the table is the truth again)."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


class RunPath:
    """What the run agent does with one batch (no Faust stream needed to test it)."""

    def __init__(
        self,
        *,
        runs: RunPipeline,
        store: TableRunStore,
        send: Send,
        acks: OrderedAcks,
        metrics: WorkerMetrics,
        dlq_topic: str,
        retention_seconds: float,
        flush_seconds: float = 0.0,
        send_changelog: ChangelogSend | None = None,
        clock: Callable[[], float] = time.time,
        history_topic: str | None = None,
    ) -> None:
        self.runs = runs
        # Execution history (PENDING when a job is sent), as the event agents write it.
        self.history_topic = history_topic
        self.store = store
        self.send = send
        self.acks = acks
        self.metrics = metrics
        self.dlq_topic = dlq_topic
        self.retention_seconds = retention_seconds
        self.clock = clock
        # Ended runs are swept at most this often (a batch start past it sweeps).
        self.sweep_every = min(max(retention_seconds / 4, 1.0), 60.0)
        self._next_sweep = clock() + self.sweep_every
        self.firings = 0
        self._tombstones: list[ChangelogWrite] = []
        # Direct sends (the worker's producer) instead of Faust's producer buffer, which
        # sends one record per task switch and holds the commit timer while it drains.
        self.state = StateFlush(
            seconds=flush_seconds,
            collect=self._collect,
            persisted=store.persisted,
            send=send_changelog,
            through_table=store.send_through_table,
        )

    async def handle(self, events: Sequence[Any]) -> None:
        """Fold a batch, queue what it produced, and hand it to the acknowledgements."""
        if self.acks.failed:
            return
        process = self.runs.process
        store = self.store
        send = self.send
        dlq = self.dlq_topic
        history = self.history_topic
        sent: list[Awaitable[Any]] = []
        now = self.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            # Tombstones go out with the next flush, behind the values before them.
            self._tombstones.extend(store.expire(now, self.retention_seconds))
        consumed: dict[str, int] = {}
        invalid = 0
        for event in events:
            message = event.message
            store.event = event
            result = process(message.value, store=store, source=message)
            for out in result.outbounds:
                sent.append(await send(out.topic, out.value, out.key, out.headers))
            if history is not None and result.matched:
                matched_at = datetime.fromtimestamp(now, UTC)
                for rec in run_execution_records(result, matched_at):
                    sent.append(await send(history, rec.value, rec.key, rec.headers))
            if result.dead_letter is not None:
                invalid += 1
                sent.append(await send(dlq, result.dead_letter, result.dead_letter_key, None))
                continue
            record = result.record
            if record is not None:
                consumed[record.event_type] = consumed.get(record.event_type, 0) + 1
            self.firings += len(result.firings)
            if result.failures:
                _log_failures(result)
        store.event = None
        sent.append(self.state.after_batch())
        self.acks.submit(events, sent)
        if events:
            topic = events[0].message.topic
            for kind, count in consumed.items():
                self.metrics.events_consumed.labels(topic, kind).inc(count)
            if invalid:
                self.metrics.dead_letters.labels(topic).inc(invalid)

    def _collect(self) -> list[ChangelogWrite]:
        """The flush's records: the swept runs' tombstones first, then the changed runs."""
        writes = [*self._tombstones, *self.store.flush()]
        self._tombstones.clear()
        return writes

    def flush(self) -> None:
        """Send every run changed since the last flush to the changelog (see StateFlush)."""
        self.state.flush()


def define_run_agent(
    app: Any, topic: Any, path: RunPath, ready: Callable[[], Awaitable[Any]]
) -> Any:
    """Register the run agent (a Faust topic of raw bytes) and its rebalance hook."""

    async def process_runs(stream: Any) -> None:
        # No record may be folded before every automation is loaded (see agents.py).
        await ready()
        async for events in stream.noack_take(BATCH_MAX, BATCH_SECONDS):
            await path.handle(events)

    flush_on_revoke(app, path.state, path.store.forget)
    name = agent_name(topic.get_topic_name())
    return app.agent(topic, name=name, concurrency=1)(process_runs)


def _log_failures(result: RunResult) -> None:
    for automation_id, reason in result.failures:
        log.error(
            "run %r: automation %r produced no job: %s", result.run_path, automation_id, reason
        )
