"""deploy/examples/queue_job_consumer.py run against the real broker."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from app.kafka.admin import ensure_topics
from app.settings import Settings
from tests.integration.dispatch_support import make_job, produce_jobs
from tests.integration.harness import ROOT
from tests.support import dispatch_test_settings

EXAMPLE = ROOT / "deploy" / "examples" / "queue_job_consumer.py"


async def _run_example(settings: Settings, db: Path, group: str) -> tuple[list[str], str]:
    """Run the example until idle; its stdout lines and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--bootstrap",
        settings.kafka_bootstrap_servers,
        "--topic",
        settings.queue_job_topic,
        "--group",
        group,
        "--db",
        str(db),
        "--idle-timeout",
        "1.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines(), err.decode()


def _queue_job(automation_id: str) -> dict[str, object]:
    """A queue_job job for `automation_id` (gpu queue, acme/eval:latest)."""
    job = make_job("unused", automation_id=automation_id)
    job["action_type"] = "queue_job"
    job["action"] = {"queue": "gpu", "job": "acme/eval:latest", "config": {"model": "m:v3"}}
    return job


async def test_example_consumer_queues_each_job_once(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """Two jobs plus a redelivered one: queued once each; a rerun and a replay queue nothing."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    await ensure_topics(settings)
    first, second = _queue_job("train-a"), _queue_job("train-b")
    await produce_jobs(settings, settings.queue_job_topic, [first, second, first])
    db = tmp_path / "queue.sqlite3"

    lines, err = await _run_example(settings, db, f"runner-{uid}")
    rerun, _ = await _run_example(settings, db, f"runner-{uid}")  # offsets were committed
    replay, replay_err = await _run_example(settings, db, f"replay-{uid}")  # dedup by job_id

    assert sorted(lines) == sorted(
        f'{{"queued": "{j["job_id"]}", "queue": "gpu", "job": "acme/eval:latest"}}'
        for j in (first, second)
    )
    assert f"duplicate: {first['job_id']} already queued" in err
    assert rerun == []
    assert replay == []
    assert replay_err.count("duplicate:") == 3
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT job_id, config FROM queued_jobs ORDER BY job_id").fetchall()
    assert sorted(r[0] for r in rows) == sorted([str(first["job_id"]), str(second["job_id"])])
    assert rows[0][1] == '{"model": "m:v3"}'
