"""Dispatcher state on compacted topics: final status per job id (dedup) and gone endpoints."""

# Every instance tails both topics from the beginning into memory and keeps tailing,
# so a job finished by one instance is known to the instance that takes its partition
# over. On every partition assignment the service waits until this reader has reached
# the topics' end offsets as of that moment (`caught_up`) before taking up records:
# whatever the previous owner wrote before it committed is then in memory.

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.contract.results import ResultStatus
from app.dispatch.outgoing import Outgoing
from app.kafka.clients import behind, log_reader, partitions_of, rewind
from app.serialization import JSONDecodeError, dumps, loads

__all__ = ["DispatchState", "GoneEndpoint", "JobStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """The final status of a job id and when it was reached (epoch seconds)."""

    status: ResultStatus
    at: float


@dataclass(frozen=True, slots=True)
class GoneEndpoint:
    """An automation whose endpoint answered 410 at `revision`."""

    automation_id: str
    revision: int
    at: float
    job_id: str


class DispatchState:
    """The dedup table and the gone-endpoint table of one dispatcher kind."""

    def __init__(
        self,
        bootstrap: str,
        *,
        dedup_topic: str,
        gone_topic: str,
        retention_seconds: float,
        client_id: str,
    ) -> None:
        self._bootstrap = bootstrap
        self.dedup_topic = dedup_topic
        self.gone_topic = gone_topic
        self._retention = retention_seconds
        self._client_id = client_id
        self._jobs: dict[str, JobStatus] = {}
        self._gone: dict[str, GoneEndpoint] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self._last_prune = time.time()

    # --- queries --------------------------------------------------------------------------

    def finished(self, job_id: str) -> bool:
        """True when the job id reached FINISHED within the retention window."""
        entry = self._jobs.get(job_id)
        if entry is None or entry.status is not ResultStatus.FINISHED:
            return False
        return entry.at >= time.time() - self._retention

    def status(self, job_id: str) -> JobStatus | None:
        """The recorded final status of a job id, if any."""
        return self._jobs.get(job_id)

    def gone(self, automation_id: str, revision: int) -> GoneEndpoint | None:
        """The 410 record that covers this automation revision, if any."""
        entry = self._gone.get(automation_id)
        if entry is None or revision > entry.revision:
            return None
        return entry

    def __len__(self) -> int:
        """Job ids held in memory."""
        return len(self._jobs)

    @property
    def alive(self) -> bool:
        """True while the reader tails the state topics."""
        return self._task is not None and not self._task.done()

    # --- writes (the caller sends the returned record and awaits it before committing) -----

    def note_final(self, job_id: str, automation_id: str, status: ResultStatus) -> Outgoing:
        """Remember a job's final status; the record to write to the dedup topic."""
        now = time.time()
        self._apply_job(job_id, JobStatus(status, now))
        value = {
            "job_id": job_id,
            "automation_id": automation_id,
            "status": status.value,
            "at": now,
        }
        return Outgoing(self.dedup_topic, job_id.encode(), dumps(value))

    def note_gone(self, automation_id: str, revision: int, job_id: str) -> Outgoing:
        """Remember that an automation's endpoint is gone at `revision`; the record to write."""
        entry = GoneEndpoint(automation_id, revision, time.time(), job_id)
        self._apply_gone(entry)
        value = {
            "automation_id": automation_id,
            "revision": revision,
            "at": entry.at,
            "job_id": job_id,
        }
        return Outgoing(self.gone_topic, automation_id.encode(), dumps(value))

    # --- reading --------------------------------------------------------------------------

    async def start(self) -> None:
        """Read both topics from the beginning and keep tailing them."""
        consumer = await log_reader(self._bootstrap, client_id=f"{self._client_id}-state")
        self._consumer = consumer
        self._tps = await partitions_of(self._bootstrap, [self.dedup_topic, self.gone_topic])
        await rewind(consumer, self._tps)
        self._task = asyncio.create_task(self._tail(), name="dispatch-state-tail")

    async def stop(self) -> None:
        """Stop tailing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def caught_up(self) -> None:
        """Wait until everything written to the state topics up to now is in memory."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("state reader is not started")
        ends = await consumer.end_offsets(self._tps)
        while await behind(consumer, ends):
            if self._task is None or self._task.done():
                raise RuntimeError("state reader stopped")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 0.5)

    async def _tail(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply_record(tp.topic, record.key, record.value)
            self._progress.set()
            if time.time() - self._last_prune > 60:
                self.prune()

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:  # a tombstone
            (self._jobs if topic == self.dedup_topic else self._gone).pop(name, None)
            return
        try:
            data = loads(value)
            if topic == self.dedup_topic:
                entry = JobStatus(ResultStatus(data["status"]), float(data["at"]))
                if entry.at >= time.time() - self._retention:
                    self._apply_job(name, entry)
            else:
                self._apply_gone(
                    GoneEndpoint(
                        name, int(data["revision"]), float(data["at"]), str(data.get("job_id", ""))
                    )
                )
        except (JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed record on %s", topic)

    def _apply_job(self, job_id: str, entry: JobStatus) -> None:
        current = self._jobs.get(job_id)
        # FINISHED is sticky: a FAILED read back in any order must not hide a success.
        if (
            current is not None
            and current.status is ResultStatus.FINISHED
            and entry.status is not ResultStatus.FINISHED
        ):
            return
        self._jobs[job_id] = entry

    def _apply_gone(self, entry: GoneEndpoint) -> None:
        current = self._gone.get(entry.automation_id)
        if current is None or entry.revision >= current.revision:
            self._gone[entry.automation_id] = entry

    def prune(self) -> int:
        """Forget job ids older than the retention window; returns how many."""
        self._last_prune = time.time()
        horizon = self._last_prune - self._retention
        old = [job_id for job_id, entry in self._jobs.items() if entry.at < horizon]
        for job_id in old:
            del self._jobs[job_id]
        return len(old)
