"""The S1 profile's split: who owns a sample, and what it was doing."""

from __future__ import annotations

from pathlib import Path

from bench.profile import FAUST, HOOKSTREAM, owner, summarize

TOP = "run_worker (app/stream/worker.py:294);Worker.execute_from_commandline (mode/worker.py:257)"
FETCHER = "Fetcher._fetcher (faust/transport/consumer.py:173)"
DRAIN = f"{TOP};{FETCHER};drain_messages (app/stream/drain.py:91)"
AGENT = "process_events (app/stream/agents.py:137)"
HANDLE = f"{TOP};{AGENT};EventPath.handle (app/stream/agents.py:67)"


def test_the_copied_drain_loop_is_faust_delivery() -> None:
    """app/stream/drain.py is Faust's loop: its own samples go to Faust, not to Hookstream."""
    assert owner(DRAIN.split(";")) == FAUST
    assert owner(HANDLE.split(";")) == HOOKSTREAM


def test_history_work_is_charged_to_the_history_wherever_it_runs(tmp_path: Path) -> None:
    """Frames of app/core/history.py or the history agent put a sample in the history row."""
    raw = tmp_path / "prof.txt"
    raw.write_text(
        f"{HANDLE};execution_records (app/core/history.py:400) 3\n"
        f"{TOP};fold_chunk (app/stream/history_table.py:90) 1\n"
        f"{DRAIN};Conductor.on_message (faust/transport/conductor.py:303) 4\n"
    )
    summary = summarize(raw)
    categories = dict(summary.categories)
    history = next(name for name in categories if name.startswith("execution history"))
    assert categories[history] == 50.0
    delivery = next(name for name in categories if name.startswith("Faust delivery"))
    assert categories[delivery] == 50.0
