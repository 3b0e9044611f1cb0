"""Dry runs: the workers' Pipeline renders the job; explanations say why not; nothing else."""

from __future__ import annotations

import pytest

from app.api.dryrun import dry_run
from app.api.problems import ApiError
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.serialization import loads
from app.settings import Settings
from tests.factories import NOW, event_bytes, make_automation

SETTINGS = Settings()


def test_job_is_what_the_worker_pipeline_emits() -> None:
    """Byte for byte the same job as the Pipeline the workers run."""
    automation = make_automation()
    raw = event_bytes()
    result = dry_run(automation, raw, SETTINGS, NOW)
    pipeline = Pipeline(
        AutomationIndex([automation]),
        SETTINGS.action_topics,
        SETTINGS.max_event_bytes,
        clock=lambda: NOW,
        reserved_topics=SETTINGS.reserved_topics,
    )
    expected = pipeline.process(raw, aliases=MemoryAliasStore(), source=SourceInfo("x"))
    assert result["matched"] is True
    assert result["job"] == loads(expected.outbounds[0].value)
    assert result["topic"] == SETTINGS.webhook_topic
    assert result["event_generated"] is False


def test_disabled_automation_is_explained_and_rendered_as_if_enabled() -> None:
    """matched is false for a disabled automation, but its job can be reviewed."""
    result = dry_run(make_automation(enabled=False), event_bytes(), SETTINGS, NOW)
    assert result["matched"] is False
    assert result["reasons"] == ["automation is disabled"]
    assert result["job"] is not None


def test_no_match_renders_no_job_and_lists_reasons() -> None:
    """Out of scope: no job, each reason listed."""
    result = dry_run(make_automation(), event_bytes(entity="globex"), SETTINGS, NOW)
    assert result["job"] is None
    assert result["reasons"] == ["scope entity is 'acme' but the event's entity is 'globex'"]


def test_no_op_matches_with_a_note_and_no_job() -> None:
    """A no_op match emits nothing; the note says so."""
    result = dry_run(make_automation(action={"type": "no_op"}), event_bytes(), SETTINGS, NOW)
    assert result["matched"] is True
    assert result["job"] is None
    assert result["notes"] == ["no_op action: nothing to send"]


def test_generated_event_when_none_is_given() -> None:
    """Without an event, a typed example is used and flagged."""
    result = dry_run(make_automation(filter=None), None, SETTINGS, NOW)
    assert result["event_generated"] is True
    assert result["matched"] is True


@pytest.mark.parametrize(("raw", "status"), [(b"[]", 400), (b'{"event_id": "x"}', 422)])
def test_invalid_events_are_refused(raw: bytes, status: int) -> None:
    """Bad events raise ApiError with the ingest statuses."""
    with pytest.raises(ApiError) as caught:
        dry_run(make_automation(), raw, SETTINGS, NOW)
    assert caught.value.status == status
