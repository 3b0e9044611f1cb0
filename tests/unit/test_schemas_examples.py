"""Committed JSON Schemas are current, deterministic, and the examples are valid."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.contract.dead_letters import DeadLetter
from app.contract.events import Event, parse_event
from app.contract.runs import parse_run_record
from app.contract.schemas import SCHEMAS, check_schemas, export_schemas, render_schemas
from app.core.loader import iter_event_lines, load_automations
from app.serialization import loads

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_are_not_stale() -> None:
    """schemas/ matches the models (regenerate with `hookstream schemas export`)."""
    assert check_schemas(ROOT / "schemas") == []


def test_export_is_deterministic_and_checkable(tmp_path: Path) -> None:
    """Export writes every schema, byte-identical across runs, and check then passes."""
    written = export_schemas(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(SCHEMAS)
    assert render_schemas() == render_schemas()
    assert check_schemas(tmp_path / "out") == []
    for path in written:
        content = path.read_bytes()
        assert content.endswith(b"}\n")
        assert loads(content)["$schema"].startswith("https://json-schema.org/")


def test_check_reports_missing_and_stale(tmp_path: Path) -> None:
    """check_schemas names missing and edited files."""
    export_schemas(tmp_path)
    (tmp_path / "event.schema.json").write_text("{}\n")
    (tmp_path / "dead-letter.schema.json").unlink()
    assert sorted(check_schemas(tmp_path)) == ["dead-letter.schema.json", "event.schema.json"]


def test_event_schema_accepts_legacy_name_and_jobs_require_all_fields() -> None:
    """The event schema lists LINK_MODEL; job schemas require every field they always carry."""
    event_schema = loads(render_schemas()["event.schema.json"])
    assert "LINK_MODEL" in event_schema["properties"]["event_type"]["enum"]
    job = loads(render_schemas()["action-job.webhook.schema.json"])
    assert {"action_type", "previous_version", "action", "event", "job_id"} <= set(job["required"])


def test_example_automations_are_valid() -> None:
    """deploy/examples/automations.yaml loads and covers every action type."""
    loaded = load_automations(ROOT / "deploy" / "examples" / "automations.yaml")
    kinds = {automation.action.type for _, automation in loaded}
    assert {"webhook", "notification", "queue_job", "kafka", "no_op"} <= kinds


@pytest.mark.parametrize(
    "line", [n for n, _ in iter_event_lines(ROOT / "deploy" / "examples" / "events.jsonl")]
)
def test_example_events_are_valid(line: int) -> None:
    """Every line of deploy/examples/events.jsonl is a valid event."""
    raw = dict(iter_event_lines(ROOT / "deploy" / "examples" / "events.jsonl"))[line]
    event, _ = parse_event(raw, 1 << 20)
    assert isinstance(event, Event)


def test_example_events_cover_the_seed_cases() -> None:
    """The examples hold the seed's four cases (registry link/alias, artifact create/alias)."""
    events = [
        parse_event(raw, 1 << 20)[0]
        for _, raw in iter_event_lines(ROOT / "deploy" / "examples" / "events.jsonl")
    ]
    kinds = {(e.event_type.value, e.is_registry_event) for e in events}
    assert {
        ("LINK_ARTIFACT", True),
        ("ADD_ARTIFACT_ALIAS", True),
        ("CREATE_ARTIFACT", False),
        ("ADD_ARTIFACT_ALIAS", False),
    } <= kinds


def test_dead_letter_round_trip() -> None:
    """A dead-letter record decodes its original bytes."""
    record = DeadLetter(
        value_b64=DeadLetter.encode(b"\x00raw"),
        key_b64=None,
        source_topic="t",
        source_partition=0,
        source_offset=1,
        reason="r",
        error_code="not_json",
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert DeadLetter.model_validate_json(record.model_dump_json()).original_value() == b"\x00raw"


def test_example_run_records_are_valid() -> None:
    """Every line of deploy/examples/run-events.jsonl is a valid run record."""
    lines = list(iter_event_lines(ROOT / "deploy" / "examples" / "run-events.jsonl"))
    kinds = {parse_run_record(raw, 1 << 20)[0].event_type for _, raw in lines}
    assert kinds == {"RUN_METRIC", "RUN_STATE"}
