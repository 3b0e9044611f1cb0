"""Summarise a py-spy profile (raw collapsed stacks) into where the worker's time goes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CATEGORIES", "Summary", "summarize"]

# (category, substrings of a frame "function (file:line)"): a sample belongs to the
# first category, in this order, found in its innermost frame that is not generic.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "parse + validate (orjson, pydantic, app.contract.models)",
        ("pydantic", "parse_event", "serialization.py:", "app/contract/models.py"),
    ),
    ("match (index, filters)", ("app/core/matching.py", "app/lang/filters.py")),
    ("render jobs (templates, job JSON)", ("app/lang/templating.py", "Pipeline._emit", "job_id")),
    ("alias pointers (app/tables.py)", ("app/tables.py", "alias_pointers")),
    ("metrics (prometheus_client)", ("app/stream/metrics.py", "prometheus_client")),
    (
        "other decision code (pipeline, result objects)",
        ("app/core/pipeline.py", "__create_fn__", "app/stream/worker.py"),
    ),
    (
        "produce (Faust producer, aiokafka batches, lz4)",
        (
            "aiokafka/producer",
            "aiokafka/partitioner",
            "faust/transport/producer.py",
            "publish_message",
            "send_soon",
            "Producer.send",
            "codec.py",
            "cramjam",
            "faust/topics.py",
            "faust/channels.py:2",
        ),
    ),
    (
        "fetch + decode (aiokafka consumer)",
        ("aiokafka/consumer", "aiokafka/record", "_fetch_records", "getmany (aiokafka"),
    ),
    (
        "Kafka protocol I/O (aiokafka)",
        (
            "aiokafka/conn.py",
            "aiokafka/protocol",
            "aiokafka/client",
            "aiokafka/util.py",
            "aiokafka/cluster.py",
            "async_timeout",
        ),
    ),
    (
        "Faust delivery (drain, conductor, queues, stream, acks, sensors)",
        ("faust/", "mode/"),
    ),
    ("engine loop (app/engine.py)", ("app/engine.py",)),
)

# Frames that only schedule work for others: a sample is charged to its caller.
_GENERIC = (
    "asyncio/", "selectors.py", "threading.py", "contextlib.py", "functools.py",
    "<frozen", "weakref", "_weakrefset", "abc.py", "typing.py", "queue.py",
    "mode/utils/futures.py", "mode/utils/locks.py", "mode/utils/queues.py",
    "mode/services.py", "mode/threads.py", "mode/worker.py",
)  # fmt: skip
_LOOP = "event loop (uvloop callbacks, selectors, task switches)"
_STARTUP = ("_find_and_load",)
_TOP = ("run_worker", "cmd_worker", "main (", "<module>", "_run_code", "_run_module_as_main")


@dataclass(frozen=True, slots=True)
class Summary:
    """Shares of the sampled CPU time: by category and by function (self time)."""

    samples: int
    categories: list[tuple[str, float]]
    functions: list[tuple[str, float]]


# Work done for the execution history (issue 4) is charged to it wherever it happens
# (its own agent folds results into a Faust table): a frame of it anywhere decides.
_HISTORY = "execution history (app.core.history, its table and agent)"
_HISTORY_FRAMES = ("app/history", "fold_action_results")


def _category(frames: list[str]) -> str:
    if any(marker in frame for frame in frames for marker in _HISTORY_FRAMES):
        return _HISTORY
    for frame in reversed(frames):
        if any(g in frame for g in _GENERIC):
            continue
        if frame.startswith(_TOP):
            # uvloop is C: its own work shows as the Python frame that started the loop.
            return _LOOP
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
        return "other"
    return _LOOP


def summarize(path: Path, top: int = 15) -> Summary:
    """Read `py-spy record --format raw` output; import-time samples are left out."""
    by_category: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(f.startswith(_STARTUP) for f in frames[1:]):
            continue
        n = int(count)
        total += n
        by_category[_category(frames)] += n
        by_function[frames[-1].replace(".venv/lib/python3.11/site-packages/", "")] += n
    share = 100.0 / total if total else 0.0
    return Summary(
        total,
        [(name, n * share) for name, n in by_category.most_common()],
        [(name, n * share) for name, n in by_function.most_common(top)],
    )
