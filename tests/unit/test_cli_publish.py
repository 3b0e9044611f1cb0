"""`hookstream publish` for run records: flags -> record, files told apart, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import build_parser, main
from app.cli.publish import UsageError, is_run_record, run_record_from_flags
from app.contract.runs import RunMetricRecord, RunStateRecord, parse_run_record
from app.serialization import dumps
from tests.factories import event_bytes, run_metric_bytes, run_metric_dict, run_state_bytes

RUN = ("--entity", "acme", "--project", "mnist", "--run-id", "1x2y3z")


def record_of(*argv: str) -> RunMetricRecord | RunStateRecord:
    """The run record `hookstream publish ARGV` would send, as the worker reads it."""
    args = build_parser().parse_args(["publish", *argv])
    return parse_run_record(dumps(run_record_from_flags(args)), 1 << 20)[0]


def test_run_metric_flags_build_the_record_log_metrics_would() -> None:
    """--type RUN_METRIC with --step and --metric NAME=VALUE (repeated) and the run's
    name, user, tags and config: a valid RUN_METRIC without an event_id."""
    record = record_of(
        *("--type", "RUN_METRIC", *RUN, "--step", "120"),
        *("--metric", "loss=0.31", "--metric", "acc=1", "--metric", "eval/a=b=2.5"),
        *("--run-name", "bright-sun-1", "--author", "alice", "--tags", "baseline", "gpu"),
        *("--config", "lr=0.01", "--config", "optimizer=adam"),
    )
    assert isinstance(record, RunMetricRecord)
    assert record.run_path == "acme/mnist/1x2y3z"
    assert (record.step, record.metrics) == (120, {"loss": 0.31, "acc": 1, "eval/a=b": 2.5})
    assert (record.run.name, record.run.user, record.run.tags) == (
        "bright-sun-1",
        "alice",
        ["baseline", "gpu"],
    )
    assert record.run.config == {"lr": 0.01, "optimizer": "adam"}
    assert record.event_id is None


def test_run_state_flags_take_the_state_in_any_case_and_an_event_id() -> None:
    """--type RUN_STATE --state FINISHED is a `finished` record; --event-id is kept."""
    record = record_of("--type", "RUN_STATE", *RUN, "--state", "FINISHED", "--event-id", "r-9")
    assert isinstance(record, RunStateRecord)
    assert (record.state.value, record.event_id, record.run.id) == ("finished", "r-9", "1x2y3z")


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (("--type", "RUN_METRIC", *RUN, "--metric", "loss=1"), "--step"),
        (("--type", "RUN_METRIC", *RUN, "--step", "1"), "--metric"),
        (("--type", "RUN_STATE", "--entity", "acme", "--project", "mnist"), "--run-id, --state"),
    ],
)
def test_missing_run_flags_are_a_usage_error_naming_them(
    argv: tuple[str, ...], missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run record the flags do not complete is exit 2 with the flags it needs; nothing
    is sent (no broker is asked: none answers in this test)."""
    with pytest.raises(UsageError, match=missing):
        run_record_from_flags(build_parser().parse_args(["publish", *argv]))
    assert main(["publish", *argv]) == 2
    assert missing in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "true", "NaN", "1e999", ""])
def test_a_metric_that_is_not_a_finite_number_is_refused_by_the_parser(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--metric loss=VALUE takes a finite JSON number only: argparse's exit 2, naming it."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["publish", "--type", "RUN_METRIC", "--metric", f"loss={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--metric" in err
    assert "'loss'" in err


def test_run_records_are_told_from_events_by_their_type() -> None:
    """RUN_METRIC and RUN_STATE objects go to run-events; events, arrays, non-JSON do not."""
    assert is_run_record(run_metric_bytes(0, {"loss": 1.0}))
    assert is_run_record(run_state_bytes("finished"))
    assert not is_run_record(event_bytes())
    assert not is_run_record(b"[1]")
    assert not is_run_record(b"{not json")


def test_an_invalid_run_record_in_a_file_names_its_field_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lines with a valid record and a non-numeric metric: exit 1 (as an invalid
    event), the record number and the field named, before any broker is asked."""
    records = tmp_path / "runs.jsonl"
    good = run_metric_bytes(0, {"loss": 0.5})
    bad = dumps(run_metric_dict(1, {"loss": "low"}))
    records.write_bytes(good + b"\n" + bad + b"\n")
    assert main(["publish", str(records)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("invalid run record: record 2: ")
    assert "metrics.loss" in err
    assert "not a number" in err
