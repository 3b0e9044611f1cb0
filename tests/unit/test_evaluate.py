"""`hookstream evaluate` end to end on files, with the workers' pipeline."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from app.contract.jobs import parse_action_job
from app.core.evaluate import run_evaluate
from app.serialization import loads
from app.settings import Settings
from tests.factories import event_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def evaluate(automations: Path, events: Path) -> tuple[int, str, str]:
    """Run evaluate and capture (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_evaluate(automations, events, out, err, settings=Settings(), clock=lambda: NOW)
    return code, out.getvalue(), err.getvalue()


def test_examples_end_to_end() -> None:
    """The shipped examples give exit 0, fourteen valid jobs, and nothing on stderr."""
    code, out, err = evaluate(EXAMPLES / "automations.yaml", EXAMPLES / "events.jsonl")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 14
    jobs = [parse_action_job(line) for line in lines]
    pairs = [(job.event_id, job.automation_id) for job in jobs]
    assert pairs == [
        ("evt-0001-link", "evaluate-linked-candidate"),
        ("evt-0001-link", "mirror-classifier-links"),
        ("evt-0002-alias-prod", "deploy-on-production"),
        ("evt-0003-new-dataset", "train-on-new-dataset"),
        ("evt-0004-alias-qc", "notify-test-set-checked"),
        ("evt-0005-legacy-link", "evaluate-linked-candidate"),
        ("evt-0005-legacy-link", "mirror-classifier-links"),
        ("evt-0006-prod-moves", "deploy-on-production"),
        ("evt-0008-link-staging", "evaluate-linked-candidate"),
        ("evt-0008-link-staging", "notify-staging-link"),
        ("evt-0009-tag-candidate", "review-tagged-candidates"),
        ("evt-0010-untag-raw", "audit-removed-tags"),
        ("evt-0011-prod-removed", "rollback-on-production-removed"),
        ("evt-0012-unlink", "mirror-unlinks"),
    ]
    moved = loads(lines[7])
    assert moved["previous_version"] == 3
    assert loads(moved["action"]["payload"])["previous"] == "v3"
    removed = loads(lines[12])
    assert removed["event_type"] == "REMOVE_ARTIFACT_ALIAS"
    assert removed["previous_version"] == 4
    assert loads(removed["action"]["payload"])["was"] == "v4"


def test_output_is_deterministic() -> None:
    """Two runs with the same clock print identical output."""
    first = evaluate(EXAMPLES / "automations.yaml", EXAMPLES / "events.jsonl")
    second = evaluate(EXAMPLES / "automations.yaml", EXAMPLES / "events.jsonl")
    assert first == second


def test_bad_lines_are_reported_and_do_not_stop(tmp_path: Path) -> None:
    """Invalid event lines go to stderr as 'line N: reason'; later lines still run."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"{not json\n"
        + event_bytes(event_type="UNKNOWN")
        + b"\n\n"
        + (EXAMPLES / "events.jsonl").read_bytes().splitlines()[1]
        + b"\n"
    )
    code, out, err = evaluate(EXAMPLES / "automations.yaml", events)
    assert code == 0
    assert err.splitlines()[0].startswith("line 1: not valid JSON")
    assert err.splitlines()[1].startswith("line 2: event_type: unknown event type 'UNKNOWN'")
    assert len(err.splitlines()) == 2
    assert [loads(line)["automation_id"] for line in out.splitlines()] == ["deploy-on-production"]


def test_invalid_automations_exit_2(tmp_path: Path) -> None:
    """Invalid automations stop the run with exit 2 and a clear message."""
    automations = tmp_path / "bad.yaml"
    automations.write_text("id: Bad\nname: x\n")
    code, out, err = evaluate(automations, EXAMPLES / "events.jsonl")
    assert code == 2
    assert out == ""
    assert "invalid automations" in err
    assert f"{automations}: id:" in err
    assert f"{automations}: event: Field required" in err


def test_unreadable_files_exit_2(tmp_path: Path) -> None:
    """A missing automations or events file gives exit 2 naming it."""
    code, _, err = evaluate(tmp_path / "none.yaml", EXAMPLES / "events.jsonl")
    assert code == 2
    assert "cannot read automations" in err
    code, _, err = evaluate(EXAMPLES / "automations.yaml", tmp_path / "none.jsonl")
    assert code == 2
    assert "cannot read events" in err


def test_empty_events_file(tmp_path: Path) -> None:
    """An empty events file is a successful run with no output."""
    events = tmp_path / "empty.jsonl"
    events.write_text("")
    assert evaluate(EXAMPLES / "automations.yaml", events) == (0, "", "")
