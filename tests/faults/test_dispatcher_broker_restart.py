"""Scenario 2, dispatcher half: the broker restarts while the webhook dispatcher works.

Runs against a DEDICATED broker of its own (local jars, a free port from 39092 up),
started and stopped here: the shared broker of the session is never touched. The same
dispatcher process must recover by itself and every job get its 2xx, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app import serialization
from app.kafka.admin import ensure_topics
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    PacedProducer,
    dedicated_broker,
    hits_by_id,
    is_2xx,
    posts_after_success,
    require_broker_tools,
    start_local_broker,
    succeeded,
)
from tests.integration.dispatch_support import DispatcherProcess, Receiver, make_job
from tests.support import isolated_settings, until

JOBS = 2_000
DOWN_SECONDS = 3.0
BROKER_PORT = 28092
PARTITIONS = 4
DISPATCH: dict[str, Any] = {
    "allow_http": True,
    "allowed_networks": ["127.0.0.1/32"],
    "timeout_seconds": 5.0,
    "backoff_base_seconds": 0.05,
    "backoff_max_seconds": 1.0,
    "retry_tiers_seconds": [0.2, 1.0],
    "max_attempts": 50,
    "max_age_seconds": 600.0,
    "commit_interval_seconds": 0.2,
    "drain_seconds": 2.0,
    "session_timeout_seconds": 6.0,
    "max_in_flight_per_partition": 4,
}


@pytest.fixture
def own_broker() -> Iterator[tuple[int, Any]]:
    """A broker on its own port; skipped without Java/Maven outside CI, failed in CI."""
    require_broker_tools()
    # Below the ephemeral range (32768-60999): while the broker is down, the clients'
    # reconnect storm can self-connect to a port inside it and hold it (EADDRINUSE).
    with dedicated_broker(first_port=BROKER_PORT) as broker:
        yield broker


def _gone(local: Any, port: int, pid: int | None) -> bool:
    """The stopped broker's process is reaped and neither of its ports answers."""
    if pid is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            pass
    return not local.port_open(port) and not local.port_open(port + 1)


async def test_dispatcher_recovers_from_broker_restart_without_loss_or_repeat(
    own_broker: tuple[int, Any], uid: str, tmp_path: Path, fault_report: Report
) -> None:
    """Stop and restart the broker mid-run: the same dispatcher delivers every job once."""
    port, local = own_broker
    bootstrap = f"127.0.0.1:{port}"

    async def slowish(request: web.Request, count: int) -> web.StreamResponse:
        await asyncio.sleep(0.02)  # keeps delivery going for several seconds
        return web.Response(status=503) if count == 1 else web.Response(text="ok")

    async def ok(request: web.Request, count: int) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return web.Response(text="ok")

    receiver = await Receiver(handlers={"/flaky": slowish, "/ok": ok}).start()
    settings: Settings = isolated_settings(
        bootstrap, uid, tmp_path, topic_partitions=PARTITIONS, dispatch=DISPATCH
    )
    await ensure_topics(settings, [])
    jobs = [
        make_job(receiver.url("/flaky" if i % 4 == 0 else "/ok"), automation_id=f"hook-{i % 8}")
        for i in range(JOBS)
    ]
    wanted = {job["job_id"] for job in jobs}
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (settings.webhook_topic, job["automation_id"].encode(), serialization.dumps(job))
        for job in jobs
    ]
    dispatcher = DispatcherProcess(settings, "webhook", tmp_path / "dispatcher.log")
    producer = PacedProducer(bootstrap, records, batch=50, pause=0.1, request_timeout_ms=180_000)
    started = time.monotonic()
    try:
        await dispatcher.start()
        assert dispatcher.proc is not None
        pid = dispatcher.proc.pid
        producer.start()
        assert await until(lambda: len(succeeded(receiver)) >= JOBS // 5, 60), dispatcher.log()
        delivered_before, sent_before = len(succeeded(receiver)), producer.sent
        stopped_at = time.monotonic()
        broker_pid = local.read_pid(port)
        await asyncio.to_thread(local.stop, port, quiet=True)
        # stop() SIGKILLs a broker that ignores SIGTERM for 30 s without waiting for it to die.
        assert await until(lambda: _gone(local, port, broker_pid), 30), "broker stopped"
        stop_seconds = time.monotonic() - stopped_at
        await asyncio.sleep(DOWN_SECONDS)
        alive_while_down = dispatcher.proc.returncode is None
        assert await asyncio.to_thread(start_local_broker, local, port)
        back_at = time.monotonic()
        await asyncio.to_thread(producer.join, 120)
        complete = await until(lambda: wanted <= succeeded(receiver), 120)
        await asyncio.sleep(2.0)  # longer than the largest retry tier: late repeats show
        ready = await dispatcher.status("/readyz")
        still_same = dispatcher.proc.returncode is None and dispatcher.proc.pid == pid
    except BaseException:
        print(dispatcher.log())
        for name in ("server.log", "stdout.log"):
            with contextlib.suppress(OSError):
                lines = (local.run_dir(port) / "logs" / name).read_text(errors="replace")
                print(f"--- broker {name}:", *lines.splitlines()[-40:], sep="\n")
        raise
    finally:
        producer.close()
        await dispatcher.kill()
        await receiver.close()

    by_id = hits_by_id(receiver)
    repeated = {job_id: n for job_id, hits in by_id.items() if (n := posts_after_success(hits))}
    lost = sorted(wanted - succeeded(receiver))
    after_back = [h.at for h in receiver.hits if is_2xx(h) and h.at > back_at]
    recovery = (min(after_back) - back_at) if after_back else None
    fault_report.add(
        "2b. broker restart under the webhook dispatcher",
        events_sent=None,
        jobs_expected=JOBS,
        jobs_seen=len(by_id.keys() & wanted),
        lost=len(lost),
        duplicates=sum(repeated.values()),
        recovery_seconds=recovery,
        notes=(
            f"{JOBS} webhook jobs produced to actions.webhook (1 in 4 answered 503 first); "
            f"broker stopped after {sent_before} jobs sent / {delivered_before} delivered, down "
            f"{back_at - stopped_at:.1f} s (stop {stop_seconds:.1f} s + {DOWN_SECONDS:.0f} s + "
            "start); "
            f"{len(receiver.hits)} POSTs; duplicates = POSTs after a 2xx: "
            f"{sum(repeated.values())}; recovery = broker ready again to the next 2xx; same "
            f"dispatcher process; run {time.monotonic() - started:.0f} s"
        ),
    )
    assert delivered_before < JOBS, "the restart landed mid-run"
    assert alive_while_down, "the dispatcher survives the outage"
    assert complete, f"{len(lost)} jobs never got a 2xx, e.g. {lost[:5]}"
    assert lost == []
    assert repeated == {}, "no webhook-id is POSTed again after its 2xx"
    assert set(by_id) == wanted
    assert still_same, "no restart by hand: the same process recovered"
    assert ready == 200
