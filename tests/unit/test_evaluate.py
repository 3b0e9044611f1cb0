"""`hookstream evaluate` end to end on files, with the workers' pipeline."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.cli.main import main
from app.contract.jobs import parse_action_job
from app.core.evaluate import run_evaluate
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules
from app.serialization import dumps, loads
from app.settings import Settings
from tests.factories import ACTION_TOPICS, event_bytes, run_metric_bytes

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


def test_example_run_records_end_to_end() -> None:
    """The shipped run records fire the example run automations, as the run agent would."""
    code, out, err = evaluate(EXAMPLES / "automations.yaml", EXAMPLES / "run-events.jsonl")
    assert (code, err) == (0, "")
    jobs = [parse_action_job(line) for line in out.splitlines()]
    assert [(j.event_id, j.automation_id, j.event_type) for j in jobs] == [
        ("run-0004", "mnist-loss-converged", "RUN_METRIC"),
        ("run-0008", "run-failed", "RUN_STATE"),
    ]
    title = jobs[0].action.title  # type: ignore[union-attr]
    assert title == "RUN_METRIC: loss 0.18333333333333335 at step 4 of run acme/mnist/1x2y3z"
    payload = loads(jobs[1].action.payload)  # type: ignore[union-attr]
    assert (payload["run_path"], payload["run_state"]) == ("acme/cifar/9q8w7e", "crashed")


def test_cli_explain_says_for_each_record_why_it_fires_or_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`hookstream evaluate --explain`: one object per record, a verdict per automation."""
    argv = ["evaluate", "--automations", str(EXAMPLES / "automations.yaml"), "--explain",
            "--events", str(EXAMPLES / "run-events.jsonl")]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = [loads(line) for line in captured.out.splitlines()]
    assert [line["line"] for line in lines] == list(range(1, 9))
    verdicts = [{v["automation_id"]: v for v in line["automations"]} for line in lines]
    assert set(verdicts[0]) == {"mnist-loss-converged", "run-failed"}
    loss = [v["mnist-loss-converged"] for v in verdicts[:6]]
    assert [v["fired"] for v in loss] == [False, False, False, True, False, False]
    assert loss[1]["reasons"] == [
        "undefined: metric 'loss' has 2 of the 3 values the condition reads"
    ]
    assert loss[2]["reasons"] == ["the condition is false at 0.45"]
    assert (loss[3]["value"], loss[3]["window"]) == (pytest.approx(0.18333333), [0.3, 0.15, 0.1])
    assert loss[3]["job"]["event_id"] == "run-0004"
    assert loss[3]["topic"] == "actions.notification"
    assert "edge" in loss[4]["reasons"][0]
    failed = verdicts[6]["run-failed"]
    assert failed["reasons"] == ["state finished is not one of the automation's states (failed)"]
    assert verdicts[7]["run-failed"]["fired"]
    assert verdicts[7]["mnist-loss-converged"]["reasons"] == [
        "scope project is 'mnist' but the record's project is 'cifar'",
        "a RUN_STATE record; RUN_METRIC automations watch RUN_METRIC records",
    ]


def test_a_json_array_of_run_records_and_their_dead_letter_reasons(tmp_path: Path) -> None:
    """A JSON array is read record by record; an invalid one is reported as its dead letter."""
    records = [loads(line) for line in (EXAMPLES / "run-events.jsonl").read_text().splitlines()]
    bad = loads(run_metric_bytes(9, {"loss": "low"}))
    events = tmp_path / "runs.json"
    events.write_bytes(dumps([*records[:4], bad]))
    code, out, err = evaluate(EXAMPLES / "automations.yaml", events)
    assert code == 0
    assert [loads(line)["event_id"] for line in out.splitlines()] == ["run-0004"]
    index = AutomationIndex([])
    runs = RunPipeline(Pipeline(index, ACTION_TOPICS, 1 << 20), RunRules())
    letter = runs.process(dumps(bad), store=MemoryRunStore(), source=SourceInfo("t")).reason
    assert err == f"record 5: {letter}\n"
    assert "metric 'loss' is not a number" in err


def test_runs_flag_and_mixed_files(tmp_path: Path) -> None:
    """Events and run records mix in one file; --runs reads every record as a run record."""
    event = (EXAMPLES / "events.jsonl").read_bytes().splitlines()[1]
    run = (EXAMPLES / "run-events.jsonl").read_bytes().splitlines()[7]
    no_type = dumps({"occurred_at": "2026-11-26T10:00:00Z", "entity": "acme"})
    events = tmp_path / "mixed.jsonl"
    events.write_bytes(b"\n".join([event, run, no_type]) + b"\n")
    code, out, err = evaluate(EXAMPLES / "automations.yaml", events)
    assert code == 0
    assert [loads(line)["automation_id"] for line in out.splitlines()] == [
        "deploy-on-production", "run-failed",
    ]  # fmt: skip
    assert err.startswith("line 3: ")
    assert "RUN_METRIC" not in err
    out_io, err_io = io.StringIO(), io.StringIO()
    code = run_evaluate(EXAMPLES / "automations.yaml", events, out_io, err_io, runs=True)
    assert code == 0
    lines = err_io.getvalue().splitlines()
    assert lines[0] == (
        "line 1: event_type: unknown run event type 'ADD_ARTIFACT_ALIAS'; "
        "expected RUN_METRIC or RUN_STATE"
    )
    assert lines[1] == "line 3: event_type: Field required (RUN_METRIC or RUN_STATE)"
