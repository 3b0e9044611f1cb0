#!/usr/bin/env python3
"""Example job runner: consume `actions.queue_job` and enqueue each job exactly once.

The "queue" here is a SQLite table keyed by `job_id`; replace `enqueue` with your
runner's submit call (Launch queue, Kubernetes Job, Airflow DAG run, ...). The
pattern stays the same:

1. one consumer group for all runner instances (partitions spread the load);
2. deduplicate by `job_id` where the job is queued: Hookstream delivers at least
   once, and the same `job_id` may arrive again after a rebalance or a replay;
3. commit the Kafka offset only after the job is durably queued.

Needs only `aiokafka` (pip install aiokafka). See docs/queue_jobs.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer

__all__ = ["JobQueue", "main"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS queued_jobs (
    job_id      TEXT PRIMARY KEY,
    queue       TEXT NOT NULL,
    job         TEXT NOT NULL,
    config      TEXT NOT NULL,
    automation  TEXT NOT NULL,
    queued_at   REAL NOT NULL
)
"""


class JobQueue:
    """The runner's queue; `job_id` as primary key makes enqueueing idempotent."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(SCHEMA)
        self.db.commit()

    def enqueue(self, job: dict[str, Any]) -> bool:
        """Queue a job; False when this job_id is already queued (a redelivery)."""
        action = job["action"]
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO queued_jobs VALUES (?, ?, ?, ?, ?, ?)",
            (
                job["job_id"],
                action["queue"],
                action["job"],
                json.dumps(action.get("config", {})),
                job["automation_id"],
                time.time(),
            ),
        )
        return cursor.rowcount == 1

    def commit(self) -> None:
        """Make the batch durable (before the Kafka offsets are committed)."""
        self.db.commit()

    def prune(self, older_than_seconds: float) -> None:
        """Forget job ids older than the dedup window (keep it longer than any replay)."""
        self.db.execute(
            "DELETE FROM queued_jobs WHERE queued_at < ?", (time.time() - older_than_seconds,)
        )
        self.db.commit()


def _job(value: bytes | None) -> dict[str, Any] | None:
    """The job if it is a queue_job with the fields a runner needs, else None."""
    try:
        job = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(job, dict) or job.get("action_type") != "queue_job":
        return None
    action = job.get("action")
    if not isinstance(action, dict) or not all(
        isinstance(action.get(k), str) for k in ("queue", "job")
    ):
        return None
    if not isinstance(job.get("job_id"), str) or not isinstance(job.get("automation_id"), str):
        return None
    return job


async def run(args: argparse.Namespace) -> int:
    """Consume until stopped, idle for --idle-timeout seconds, or --max-records were queued."""
    queue = JobQueue(args.db)
    queue.prune(args.dedup_days * 86400)
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,  # commit only what is durably queued
        auto_offset_reset="earliest",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    queued = 0
    idle_since = time.monotonic()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batches:
                if not consumer.assignment():
                    idle_since = time.monotonic()  # still joining the group: not idle yet
                elif args.idle_timeout and time.monotonic() - idle_since > args.idle_timeout:
                    break
                continue
            idle_since = time.monotonic()
            for records in batches.values():
                for record in records:
                    job = _job(record.value)
                    if job is None:
                        print(
                            f"skip: not a queue_job at {record.topic}[{record.partition}]"
                            f"@{record.offset}",
                            file=sys.stderr,
                        )
                    elif queue.enqueue(job):
                        queued += 1
                        print(
                            json.dumps(
                                {
                                    "queued": job["job_id"],
                                    "queue": job["action"]["queue"],
                                    "job": job["action"]["job"],
                                }
                            ),
                            flush=True,
                        )
                    else:
                        print(f"duplicate: {job['job_id']} already queued", file=sys.stderr)
            queue.commit()
            await consumer.commit()  # after the queue commit: a crash in between only redelivers
            if args.max_records and queued >= args.max_records:
                break
    finally:
        await consumer.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="actions.queue_job")
    parser.add_argument("--group", default="job-runner")
    parser.add_argument("--db", default="queued_jobs.sqlite3", help="the example queue")
    parser.add_argument("--dedup-days", type=float, default=14.0)
    parser.add_argument("--idle-timeout", type=float, default=0.0, help="exit when idle (s)")
    parser.add_argument("--max-records", type=int, default=0, help="exit after N queued")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
