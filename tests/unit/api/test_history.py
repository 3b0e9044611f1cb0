"""History folding: the worker's records, the dispatchers' outcomes, ordering and bounds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.contract.automations import parse_automation
from app.contract.jobs import job_id
from app.contract.results import ActionResult, ResultStatus
from app.core.history import (
    EVENT_TYPE_HEADER,
    ORIGIN_HEADER,
    REVISION_HEADER,
    AutomationHistory,
    ResultRecord,
    WorkerMark,
    apply_result,
    execution_records,
    read_result,
    run_execution_records,
)
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules
from app.serialization import dumps, loads
from app.stream.history_table import fold_chunk
from tests.factories import event_bytes, make_automation, run_automation_dict, run_metric_bytes

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MARK = WorkerMark("ADD_ARTIFACT_ALIAS", 2)
TOPICS = {"webhook": "wh", "notification": "nt", "queue_job": "qj"}
LOW_LOSS = {
    "run_metric_filter": {"threshold_filter": {"name": "loss", "cmp_op": "$lt", "threshold": 0.5}}
}


def record(status: ResultStatus, job: str = "job-1", at: int = 0, **fields: Any) -> ResultRecord:
    """An action-results record of automation 'a' at T0 + `at` seconds."""
    return ResultRecord(
        job_id=job,
        automation_id="a",
        event_id=f"evt-{job}",
        action_type=fields.pop("action_type", "webhook"),
        status=status,
        at=T0 + timedelta(seconds=at),
        **fields,
    )


def fold(*steps: tuple[ResultRecord, WorkerMark | None], size: int = 50) -> Mapping[str, Any]:
    """The history after applying every step in order; it always validates as the API model."""
    state: Mapping[str, Any] | None = None
    for step, mark in steps:
        state = apply_result(state, step, mark, size)
    assert state is not None
    AutomationHistory.model_validate(state)
    return state


def test_worker_pending_then_dispatcher_finished() -> None:
    """PENDING from the worker carries event type and revision; FINISHED keeps them."""
    state = fold(
        (record(ResultStatus.PENDING), MARK),
        (record(ResultStatus.PENDING, at=1, attempt=0), None),
        (record(ResultStatus.FINISHED, at=2, attempt=1, http_status=200), None),
    )
    (entry,) = state["executions"]
    assert entry["status"] == "FINISHED"
    assert (entry["event_type"], entry["automation_revision"]) == ("ADD_ARTIFACT_ALIAS", 2)
    assert (entry["http_status"], entry["attempts"]) == (200, 1)
    assert entry["matched_at"] == entry["created_at"]
    counters = state["counters"]
    assert (counters["matched"], counters["emitted"], counters["finished"], counters["failed"]) == (
        1,
        1,
        1,
        0,
    )


def test_retrying_then_failed_counts_one_failure() -> None:
    """Only the final outcome is counted, once."""
    state = fold(
        (record(ResultStatus.PENDING), MARK),
        (record(ResultStatus.RETRYING, at=1, attempt=1, http_status=503), None),
        (record(ResultStatus.FAILED, at=2, attempt=2, error="boom"), None),
        (record(ResultStatus.FAILED, at=3, attempt=2, error="boom again"), None),
    )
    assert state["executions"][0]["status"] == "FAILED"
    assert state["counters"]["failed"] == 1


def test_a_late_pending_never_undoes_a_final_outcome() -> None:
    """Records of one job race across producers; FINISHED stays FINISHED."""
    state = fold(
        (record(ResultStatus.FINISHED, at=2, attempt=1), None),
        (record(ResultStatus.PENDING, at=0), MARK),
        (record(ResultStatus.RETRYING, at=1, attempt=1), None),
    )
    (entry,) = state["executions"]
    assert entry["status"] == "FINISHED"
    assert entry["event_type"] == "ADD_ARTIFACT_ALIAS", "the worker's fields are filled in"
    assert (state["counters"]["matched"], state["counters"]["finished"]) == (1, 1)


def test_an_ignored_record_returns_the_same_state_so_nothing_is_written() -> None:
    """The agent skips the table write when apply_result hands back its input."""
    state = fold((record(ResultStatus.FINISHED), None))
    assert apply_result(state, record(ResultStatus.RETRYING, at=1), None, 50) is state


def test_mixed_timestamp_precisions_still_order_newest_first() -> None:
    """Records from different producers carry ms or us; entries still sort by time."""
    early = record(ResultStatus.PENDING, job="early", at=0)
    late = early.model_copy(update={"job_id": "late", "at": T0 + timedelta(microseconds=123456)})
    state = fold((late, MARK), (early, MARK))
    assert [e["job_id"] for e in state["executions"]] == ["late", "early"]


def test_a_redelivered_event_is_not_counted_twice() -> None:
    """The same job from the worker again (a replay) leaves the counters alone."""
    state = fold(
        (record(ResultStatus.PENDING), MARK),
        (record(ResultStatus.PENDING, at=5), MARK),
    )
    assert state["counters"]["matched"] == 1
    assert len(state["executions"]) == 1


def test_only_the_last_n_are_kept_newest_first() -> None:
    """Entries are bounded; counters and last_fired_at cover everything."""
    steps = [(record(ResultStatus.PENDING, job=f"j{i}", at=i), MARK) for i in range(5)]
    state = fold(*steps, size=3)
    assert [e["job_id"] for e in state["executions"]] == ["j4", "j3", "j2"]
    assert state["counters"]["matched"] == 5
    assert state["counters"]["last_fired_at"].startswith("2026-11-26T10:00:04")


def test_details_are_clipped() -> None:
    """Long response bodies do not bloat the table."""
    state = fold((record(ResultStatus.FAILED, response_body="x" * 5000), None))
    assert len(state["executions"][0]["response_body"]) == 500


def test_worker_records_validate_as_action_results() -> None:
    """What the worker writes is exactly the dispatchers' ActionResult shape."""
    automations = [
        make_automation(id="hook"),
        make_automation(id="none", action={"type": "no_op"}),
        make_automation(id="mirror", action={"type": "kafka", "topic": "links", "payload": "{}"}),
        make_automation(id="loop", action={"type": "kafka", "topic": "wh", "payload": "{}"}),
    ]
    pipeline = Pipeline(AutomationIndex(automations), TOPICS, 1 << 20, reserved_topics={"wh"})
    result = pipeline.process(event_bytes(), aliases=MemoryAliasStore(), source=SourceInfo("t"))
    records = execution_records(result, T0)
    statuses = {}
    for out in records:
        parsed = ActionResult.model_validate(loads(out.value))
        assert out.key == parsed.automation_id.encode()
        assert dict(out.headers)[ORIGIN_HEADER] == b"worker"
        assert dict(out.headers)[EVENT_TYPE_HEADER] == b"ADD_ARTIFACT_ALIAS"
        assert dict(out.headers)[REVISION_HEADER] == b"1"
        statuses[parsed.automation_id] = (parsed.status, parsed.final)
    assert statuses == {
        "hook": (ResultStatus.PENDING, False),
        "none": (ResultStatus.FINISHED, True),
        "mirror": (ResultStatus.FINISHED, True),
        "loop": (ResultStatus.FAILED, True),
    }


def test_read_result_tells_worker_records_from_dispatcher_ones() -> None:
    """The origin header marks the worker; unreadable values are None."""
    value = dumps(record(ResultStatus.PENDING).model_dump(mode="json"))
    worker = read_result(value, [(ORIGIN_HEADER, b"worker"), (REVISION_HEADER, b"7")])
    assert worker is not None
    assert worker[1] == WorkerMark(None, 7)
    dispatcher = read_result(value, None)
    assert dispatcher is not None
    assert dispatcher[1] is None
    assert read_result(b"not json", None) is None
    assert read_result(b'{"job_id": "x"}', None) is None
    assert read_result(None, None) is None


class _Table:
    """The slice of a Faust table fold_chunk uses: get, data, send_changelog."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog: list[tuple[int | None, str, Any]] = []

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def send_changelog(self, partition: int | None, key: str, value: Any) -> None:
        self.changelog.append((partition, key, value))


class _Message:
    """An action-results message."""

    def __init__(self, key: bytes | None, value: bytes | None, partition: int) -> None:
        self.key, self.value, self.partition = key, value, partition
        self.headers: list[tuple[str, bytes]] = []
        self.topic, self.offset = "action-results", 0


class _Event:
    """A Faust event holding a message."""

    def __init__(self, message: _Message) -> None:
        self.message = message


def _result_event(job: str, status: ResultStatus, automation: str, partition: int) -> _Event:
    """An action-results stream event of `job` for `automation` on `partition`."""
    value = dumps(record(status, job=job).model_dump(mode="json") | {"automation_id": automation})
    return _Event(_Message(automation.encode(), value, partition))


def test_a_chunk_writes_each_changed_key_once_on_its_partition() -> None:
    """Four records of two automations give two changelog writes, each on its record's partition."""
    table = _Table()
    chunk = [
        _result_event("j1", ResultStatus.PENDING, "a", 2),
        _result_event("j1", ResultStatus.FINISHED, "a", 2),
        _result_event("j2", ResultStatus.PENDING, "b", 0),
        _result_event("j3", ResultStatus.FAILED, "a", 2),
    ]
    assert fold_chunk(table, chunk, 50) == 2
    assert [(p, k) for p, k, _ in table.changelog] == [(2, "a"), (0, "b")]
    history_a = AutomationHistory.model_validate(table.data["a"])
    assert [e.job_id for e in history_a.executions] == ["j3", "j1"]
    assert table.data["a"] is table.changelog[0][2]


def test_a_chunk_skips_unreadable_records_and_writes_nothing_unchanged() -> None:
    """Unreadable values and keyless records are skipped; an empty fold writes nothing."""
    table = _Table()
    chunk = [_Event(_Message(b"a", b"not json", 1)), _Event(_Message(None, b"{}", 1))]
    assert fold_chunk(table, chunk, 50) == 0
    assert table.changelog == []


def test_a_chunk_writes_the_store_under_the_event_of_the_keys_last_record() -> None:
    """take_events sets no current event (#300): each store write names its record's event."""
    from faust.streams import current_event

    seen: list[tuple[str, Any]] = []

    class _Data(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            seen.append((key, current_event()))
            super().__setitem__(key, value)

    table = _Table()
    table.data = _Data()
    last_a = _result_event("j3", ResultStatus.FAILED, "a", 2)
    only_b = _result_event("j2", ResultStatus.PENDING, "b", 0)
    chunk = [_result_event("j1", ResultStatus.PENDING, "a", 2), only_b, last_a]
    assert fold_chunk(table, chunk, 50) == 2
    assert seen == [("a", last_a), ("b", only_b)]
    assert current_event() is None


def test_run_firings_get_worker_records_and_a_replay_is_kept_once() -> None:
    """A run job is PENDING under the automation's event type; its replay is one execution."""
    change = {"run_metric_filter": {"change_filter": {
        "name": "loss", "change_amount": 0.5, "change_type": "ABSOLUTE", "change_dir": "ANY",
    }}}  # fmt: skip
    hook = parse_automation(run_automation_dict(change, event="RUN_METRIC_CHANGE"))
    quiet = parse_automation(
        run_automation_dict(LOW_LOSS, id="quiet", action={"type": "no_op", "url": None,
                                                          "payload": None})
    )  # fmt: skip
    index = AutomationIndex([hook, quiet])
    runs = RunPipeline(Pipeline(index, TOPICS, 1 << 20), RunRules(list(index)))
    store = MemoryRunStore()
    source = SourceInfo("run-events", 3, 0)
    assert (
        run_execution_records(
            runs.process(run_metric_bytes(0, {"loss": 0.9}), store=store, source=source), T0
        )
        == []
    )
    second = SourceInfo("run-events", 3, 1)
    result = runs.process(run_metric_bytes(1, {"loss": 0.1}), store=store, source=second)
    records = run_execution_records(result, T0)
    seen = {}
    for out in records:
        parsed = ActionResult.model_validate(loads(out.value))
        headers = dict(out.headers)
        seen[parsed.automation_id] = (parsed.status, headers[EVENT_TYPE_HEADER], parsed.job_id)
    event_id = "acme/mnist/run-1@3:1"
    assert seen == {
        "loss-watch": (
            ResultStatus.PENDING,
            b"RUN_METRIC_CHANGE",
            job_id(event_id, "loss-watch", 1),
        ),
        "quiet": (ResultStatus.FINISHED, b"RUN_METRIC", job_id(event_id, "quiet", 1)),
    }
    replay = runs.process(run_metric_bytes(1, {"loss": 0.1}), store=store, source=second)
    assert replay.replayed
    again = run_execution_records(replay, T0 + timedelta(seconds=5))
    steps = [read_result(r.value, r.headers) for r in (*records, *again) if r.key == b"loss-watch"]
    state: Mapping[str, Any] | None = None
    for step in steps:
        assert step is not None
        state = apply_result(state, step[0], step[1], 50)
    assert state is not None
    history = AutomationHistory.model_validate(state)
    assert len(history.executions) == 1
    assert history.executions[0].event_type == "RUN_METRIC_CHANGE"
    assert history.counters.matched == 1
