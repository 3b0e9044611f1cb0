"""Webhook dispatcher against a real broker and a real local HTTP server (in-process)."""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.kafka.clients import produce
from app.settings import Settings
from tests.integration.dispatch_support import (
    Receiver,
    dispatcher,
    make_job,
    produce_jobs,
)
from tests.support import dispatch_test_settings, read_back


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A recording HTTP server on 127.0.0.1."""
    rec = await Receiver().start()
    try:
        yield rec
    finally:
        await rec.close()


def _final(job: dict[str, Any]) -> Any:
    """Predicate: the job's final result is in action-results."""
    return lambda values: any(v["job_id"] == job["job_id"] and v["final"] for v in values)


def _of(values: list[Any], job: dict[str, Any]) -> list[Any]:
    """The results of `job`, in order."""
    return [v for v in values if v["job_id"] == job["job_id"]]


async def _metric(settings: Settings, name: str) -> float:
    """A sample of the dispatcher's /metrics (0 when absent)."""
    url = f"http://127.0.0.1:{settings.web_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _wait_metric(settings: Settings, name: str, at_least: float = 1) -> float:
    """Poll /metrics until the metric reaches `at_least` (10 s at most); its value."""
    value = 0.0
    for _ in range(200):
        value = await _metric(settings, name)
        if value >= at_least:
            break
        await asyncio.sleep(0.05)
    return value


async def test_success_first_time(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A 200 on the first POST: one request, PENDING then FINISHED in action-results."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/hook"))
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            values = await results.until(_final(job))
        finally:
            await results.aclose()
    assert [h.webhook_id for h in receiver.hits] == [job["job_id"]]
    assert [(r["status"], r["attempt"]) for r in values] == [("PENDING", 0), ("FINISHED", 1)]
    assert values[1]["http_status"] == 200
    assert values[1]["automation_id"] == job["automation_id"]
    assert receiver.hits[0].body == job["action"]["payload"].encode()
    assert receiver.hits[0].headers["Content-Type"] == "application/json"


async def test_failures_then_success(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Two 500s then a 200: three POSTs with one webhook-id, every attempt in action-results."""

    async def flaky(request: web.Request, count: int) -> web.StreamResponse:
        return web.Response(status=500, text="boom") if count <= 2 else web.Response(text="ok")

    receiver.handlers["/flaky"] = flaky
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/flaky"))
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            values = _of(await results.until(_final(job)), job)
        finally:
            await results.aclose()
    assert [h.status for h in receiver.for_id(job["job_id"])] == [500, 500, 200]
    assert [(v["status"], v["attempt"], v["http_status"]) for v in values] == [
        ("PENDING", 0, None),
        ("RETRYING", 1, 500),
        ("RETRYING", 2, 500),
        ("FINISHED", 3, 200),
    ]
    assert values[1]["next_attempt_at"] is not None
    assert values[1]["response_body"] == "boom"
    assert [v["final"] for v in values] == [False, False, False, True]


async def test_retry_after_is_honoured(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A 429 with Retry-After: 1 delays the next POST by at least a second, via a retry topic."""

    async def throttled(request: web.Request, count: int) -> web.StreamResponse:
        if count == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver.handlers["/throttled"] = throttled
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/throttled"))
    retry_topic = settings.dispatch.retry_topic(settings.webhook_topic, 1.0)
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        retries = await read_back(settings, retry_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            values = _of(await results.until(_final(job)), job)
            await retries.until(lambda v: len(v) == 1, seconds=5)
        finally:
            await results.aclose()
            await retries.aclose()
    first, second = receiver.for_id(job["job_id"])
    gap = second.at - first.at
    assert 1.0 <= gap < 3.0, gap
    retrying = values[1]
    waited = datetime.fromisoformat(retrying["next_attempt_at"]) - datetime.fromisoformat(
        retrying["at"]
    )
    assert waited.total_seconds() >= 1.0
    headers = dict(retries.records()[0].headers)
    assert headers["hookstream-attempts"] == b"1"
    assert values[-1]["status"] == "FINISHED"


async def test_timeouts_retried_then_dead_lettered(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A timeout is retried; a job that always times out goes to actions.dlq after max_attempts."""

    async def slow_once(request: web.Request, count: int) -> web.StreamResponse:
        if count == 1:
            await asyncio.sleep(1.0)
        return web.Response(text="ok")

    async def always_slow(request: web.Request, count: int) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response(text="late")

    receiver.handlers["/slow-once"] = slow_once
    receiver.handlers["/always-slow"] = always_slow
    settings = dispatch_test_settings(
        kafka_bootstrap, uid, tmp_path, timeout_seconds=0.3, max_attempts=2
    )
    recovers = make_job(receiver.url("/slow-once"), automation_id="recovers")
    never = make_job(receiver.url("/always-slow"), automation_id="never")
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        dlq = await read_back(settings, settings.actions_dlq_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [recovers, never])
            values = await results.until(lambda v: _final(recovers)(v) and _final(never)(v))
            letters = await dlq.until(lambda v: len(v) >= 1)
        finally:
            await results.aclose()
            await dlq.aclose()
    ok = _of(values, recovers)
    assert [(v["status"], v["error_kind"]) for v in ok[1:]] == [
        ("RETRYING", "timeout"),
        ("FINISHED", "none"),
    ]
    bad = _of(values, never)
    assert [(v["status"], v["error_kind"]) for v in bad[1:]] == [
        ("RETRYING", "timeout"),
        ("FAILED", "timeout"),
    ]
    assert len(letters) == 1
    assert letters[0]["job"]["job_id"] == never["job_id"]
    assert [a["error_kind"] for a in letters[0]["attempts"]] == ["timeout", "timeout"]
    assert "gave up after 2 attempts" in letters[0]["reason"]


async def test_gone_410_marks_endpoint_until_revision_changes(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """410 fails at once and marks the endpoint gone: same revision is not sent, a new one is."""

    async def gone_once(request: web.Request, count: int) -> web.StreamResponse:
        return web.Response(status=410) if len(receiver.on("/gone")) == 1 else web.Response()

    receiver.handlers["/gone"] = gone_once
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    first = make_job(receiver.url("/gone"), automation_id="gone-hook", revision=1)
    same_rev = make_job(receiver.url("/gone"), automation_id="gone-hook", revision=1)
    new_rev = make_job(receiver.url("/gone"), automation_id="gone-hook", revision=2)
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        dlq = await read_back(settings, settings.actions_dlq_topic)
        try:
            for job in (first, same_rev, new_rev):
                await produce_jobs(settings, settings.webhook_topic, [job])
                values = await results.until(_final(job))
            letters = await dlq.until(lambda v: len(v) >= 2)
        finally:
            await results.aclose()
            await dlq.aclose()
    assert [h.webhook_id for h in receiver.on("/gone")] == [first["job_id"], new_rev["job_id"]]
    gone = _of(values, first)[-1]
    assert (gone["status"], gone["http_status"], gone["endpoint_gone"]) == ("FAILED", 410, True)
    skipped = _of(values, same_rev)[-1]
    assert (skipped["status"], skipped["error_kind"]) == ("FAILED", "endpoint_gone")
    assert _of(values, new_rev)[-1]["status"] == "FINISHED"
    assert sorted(letter["job"]["job_id"] for letter in letters) == sorted(
        [first["job_id"], same_rev["job_id"]]
    )


async def test_bad_request_400_not_retried(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A 400 fails at once: one POST, FAILED final, a dead letter with that one attempt."""

    async def bad(request: web.Request, count: int) -> web.StreamResponse:
        return web.Response(status=400, text="unknown model field")

    receiver.handlers["/bad"] = bad
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/bad"))
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        dlq = await read_back(settings, settings.actions_dlq_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job])
            values = await results.until(_final(job))
            letters = await dlq.until(lambda v: len(v) >= 1)
            await asyncio.sleep(0.6)  # longer than the smallest retry tier: nothing follows
        finally:
            await results.aclose()
            await dlq.aclose()
    assert len(receiver.for_id(job["job_id"])) == 1
    assert [(v["status"], v["final"]) for v in values] == [("PENDING", False), ("FAILED", True)]
    assert len(letters) == 1
    assert letters[0]["reason"] == "not retryable: HTTP 400 Bad Request"
    assert [a["http_status"] for a in letters[0]["attempts"]] == [400]
    assert letters[0]["attempts"][0]["response_body"] == "unknown model field"


async def test_redelivered_job_is_not_posted_again(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A FINISHED job_id seen again (same run, and after a restart) is skipped and counted."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    job = make_job(receiver.url("/once"))
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [job, job])
            await results.until(_final(job))
            skipped_first = await _wait_metric(settings, "hookstream_duplicate_jobs_skipped_total")
        finally:
            await results.aclose()
    async with dispatcher(settings):  # a new instance: dedup comes from the topic
        await produce_jobs(settings, settings.webhook_topic, [job])
        skipped_second = await _wait_metric(settings, "hookstream_duplicate_jobs_skipped_total")
    assert len(receiver.for_id(job["job_id"])) == 1
    assert (skipped_first, skipped_second) == (1, 1)


async def test_invalid_jobs_are_dead_lettered(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Not JSON, or missing contract fields: dead-lettered with a reason, never POSTed."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    broken = make_job(receiver.url("/never"), automation_id="broken")
    del broken["created_at"]
    async with dispatcher(settings):
        dlq = await read_back(settings, settings.actions_dlq_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, [broken])
            await produce(
                settings.kafka_bootstrap_servers,
                settings.webhook_topic,
                [(b"raw", b"\xffnot json")],
            )
            letters = await dlq.until(lambda v: len(v) >= 2)
        finally:
            await dlq.aclose()
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0].startswith("not an action job")
    assert "created_at" in reasons[1]
    assert receiver.hits == []
    raw = next(letter for letter in letters if "value_b64" in letter["job"])
    assert base64.b64decode(raw["job"]["value_b64"]) == b"\xffnot json"
