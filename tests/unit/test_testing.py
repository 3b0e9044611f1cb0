"""app.testing: the fakes Hookstream ships for users' own tests."""

from __future__ import annotations

import asyncio

import pytest

from app.core.pipeline import ProcessResult
from app.settings import Settings
from app.testing import (
    MemoryAliasStore,
    RecordingSend,
    RecordingWrites,
    Write,
    pipeline_for,
    run_events,
)
from tests.factories import NOW, event_bytes, make_automation


def test_run_events_matches_and_renders_through_the_pipeline() -> None:
    """A matching event gives one job on the automation's action topic; bytes that are
    not an event give a dead letter instead, as in the worker."""
    settings = Settings()
    pipeline = pipeline_for([make_automation()], settings, clock=lambda: NOW)
    results = run_events(pipeline, [event_bytes(), b"not json"])
    assert all(isinstance(r, ProcessResult) for r in results)
    matched, invalid = results
    assert [out.automation_id for out in matched.outbounds] == [make_automation().id]
    assert matched.dead_letter is None
    assert invalid.outbounds == []
    assert invalid.dead_letter is not None


def test_run_events_shares_one_alias_store() -> None:
    """Alias pointers written by one event are in the store the caller passed."""
    store = MemoryAliasStore()
    run_events(pipeline_for([make_automation()]), [event_bytes()], aliases=store)
    assert store.data, "the alias event left no pointer in the store"


async def test_recording_send_records_and_resolves_on_request() -> None:
    """Without auto_ack the future waits for the test; with it, it is done at once."""
    send = RecordingSend()
    future = await send("jobs", b"v", b"k", None)
    assert not future.done()
    assert [r.topic for r in send.to("jobs")] == ["jobs"]
    future.set_result(None)
    acked = RecordingSend(auto_ack=True)
    done = await acked("jobs", b"v", None, [])
    assert done.done()
    await asyncio.wait_for(done, 1)
    assert acked.records[0].value == b"v"


async def test_recording_writes_numbers_records_per_topic_and_can_fail() -> None:
    """Each topic's writes get offsets 0, 1, ...; on_write sees each; fail is raised."""
    seen: list[Write] = []
    send = RecordingWrites(on_write=seen.append)
    assert await send("automations", b"a", b"{}") == (0, 0)
    assert await send("automations", b"b", None) == (0, 1)
    assert await send("registry-events", b"p", b"{}") == (0, 0)
    assert [w.key for w in seen] == [b"a", b"b", b"p"]
    assert [w.key for w in send.to("automations")] == [b"a", b"b"]
    send.fail = ConnectionError("down")
    with pytest.raises(ConnectionError):
        await send("automations", b"c", b"{}")
    assert len(send.writes) == 3
