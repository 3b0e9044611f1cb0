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

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from app.core.history import run_execution_records
from app.core.run_pipeline import RunPipeline, RunResult
from app.core.run_windows import RunMemory
from app.stream.acks import OrderedAcks
from app.stream.agents import BATCH_MAX, BATCH_SECONDS, Send, agent_name
from app.stream.context import current_event_of
from app.stream.metrics import WorkerMetrics

__all__ = [
    "RUN_STATE_TABLE",
    "ChangelogSend",
    "ChangelogWrite",
    "RunPath",
    "TableRunStore",
    "define_run_agent",
    "define_run_table",
]

log = logging.getLogger(__name__)

RUN_STATE_TABLE = "run-state"

# (partition, run path, value or None for a tombstone) of one changelog record.
ChangelogWrite = tuple[int, str, bytes | None]
# (partition, run path, value) -> the future of Kafka's acknowledgement (RecordMetadata).
ChangelogSend = Callable[[int, str, bytes | None], Awaitable[Awaitable[Any]]]


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


class TableRunStore:
    """The run pipeline's RunStore over the run-state table, for one agent's batches.

    Set ``event`` to the Faust event being processed before calling the pipeline.
    """

    __slots__ = ("_cache", "_pending", "_table", "event")

    def __init__(self, table: Any) -> None:
        self._table = table
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

    def send_through_table(self, writes: Sequence[ChangelogWrite]) -> list[Any]:
        """Send changelog records through Faust's producer buffer (Table.send_changelog)."""
        table = self._table
        return [table.send_changelog(p, path, value) for p, path, value in writes]

    def persisted(self, offsets: dict[int, int]) -> None:
        """Record the changelog offsets written per partition, as Faust's callback would."""
        table = self._table
        topic = table.changelog_topic.get_topic_name()
        for partition, offset in offsets.items():
            table.data.set_persisted_offset(TP(topic, partition), offset)

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
        self.flush_seconds = flush_seconds
        # Resolved once the changelog records of the next flush are acknowledged: every
        # batch folded before that flush waits on it before it is acked.
        self._gate: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Direct sends (the worker's producer) instead of Faust's producer buffer, which
        # sends one record per task switch and holds the commit timer while it drains.
        self.send_changelog = send_changelog
        self._tombstones: list[ChangelogWrite] = []
        # Flushes append their records in order (a later value never overtakes one).
        self._order = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()

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
        sent.append(self._next_flush())
        if self.flush_seconds <= 0:
            self.flush()
        self.acks.submit(events, sent)
        if events:
            topic = events[0].message.topic
            for kind, count in consumed.items():
                self.metrics.events_consumed.labels(topic, kind).inc(count)
            if invalid:
                self.metrics.dead_letters.labels(topic).inc(invalid)

    def _next_flush(self) -> asyncio.Future[None]:
        """The gate of the next flush (created, with its timer, by the first batch after one)."""
        if self._gate is None:
            loop = asyncio.get_running_loop()
            self._gate = loop.create_future()
            if self.flush_seconds > 0:
                self._timer = loop.call_later(self.flush_seconds, self.flush)
        return self._gate

    def flush(self) -> None:
        """Send every run changed since the last flush to the changelog; open the gate after.

        Runs every ``flush_seconds`` (also between two records of a batch: that batch
        waits for the next gate, which holds the rest), so a run logging every few
        milliseconds costs one changelog record per interval, not one per batch.
        """
        gate, self._gate = self._gate, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writes = [*self._tombstones, *self.store.flush()]
        self._tombstones.clear()
        if self.send_changelog is not None:
            task = asyncio.ensure_future(self._send(writes, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        sends = self.store.send_through_table(writes)
        if gate is None:
            return
        if not sends:
            gate.set_result(None)
            return
        _open_when(gate, asyncio.gather(*sends))

    async def _send(self, writes: list[ChangelogWrite], gate: asyncio.Future[None] | None) -> None:
        send = self.send_changelog
        assert send is not None
        try:
            async with self._order:
                futures = [await send(p, path, value) for p, path, value in writes]
            results = await asyncio.gather(*futures)
        except Exception as exc:  # a refused record: the gate fails, and so the acks
            if gate is not None and not gate.done():
                gate.set_exception(exc)
            return
        offsets: dict[int, int] = {}
        for meta in results:
            partition, offset = int(meta.partition), int(meta.offset)
            if offset > offsets.get(partition, -1):
                offsets[partition] = offset
        self.store.persisted(offsets)
        if gate is not None and not gate.done():
            gate.set_result(None)


def _open_when(gate: asyncio.Future[None], done: asyncio.Future[Any]) -> None:
    """Resolve ``gate`` as ``done`` ends (its failure fails the gate)."""

    def opened(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            gate.cancel()
        elif fut.exception() is not None:
            gate.set_exception(fut.exception())  # type: ignore[arg-type]
        else:
            gate.set_result(None)

    done.add_done_callback(opened)


def define_run_agent(
    app: Any, topic: Any, path: RunPath, ready: Callable[[], Awaitable[Any]]
) -> Any:
    """Register the run agent (a Faust topic of raw bytes) and its rebalance hook."""

    async def process_runs(stream: Any) -> None:
        # No record may be folded before every automation is loaded (see agents.py).
        await ready()
        async for events in stream.noack_take(BATCH_MAX, BATCH_SECONDS):
            await path.handle(events)

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # What was folded goes to the changelog before the cache is dropped.
        path.flush()
        path.store.forget()

    app.on_partitions_revoked.connect(on_revoked)
    name = agent_name(topic.get_topic_name())
    return app.agent(topic, name=name, concurrency=1)(process_runs)


def _log_failures(result: RunResult) -> None:
    for automation_id, reason in result.failures:
        log.error(
            "run %r: automation %r produced no job: %s", result.run_path, automation_id, reason
        )
