"""Summarise a py-spy profile (raw collapsed stacks) into where the worker's time goes.

Two views of the same samples: the *split* by owner (Faust's delivery, i.e. the
faust/, mode/ and aiokafka/ frames, against Hookstream's own work in app/ frames, and
the event loop), and finer *categories* of what the code was doing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CATEGORIES", "FAUST", "HOOKSTREAM", "LOOP", "OWNERS", "Summary", "owner", "summarize"]

# (category, substrings of a frame "function (file:line)"): a sample belongs to the
# first category, in this order, found in its innermost frame that is not generic.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "parse + validate (orjson, pydantic, app.contract.events)",
        (
            "pydantic",
            "parse_event",
            "serialization.py:",
            "app/contract/events.py",
            "app/contract/fields.py",
        ),
    ),
    (
        "match (index, filters)",
        ("app/core/matching.py", "app/core/scopes.py", "app/lang/filters.py"),
    ),
    ("render jobs (templates, job JSON)", ("app/lang/templating.py", "Pipeline.emit", "job_id")),
    ("alias pointers (app/stream/aliases.py)", ("app/stream/aliases.py", "alias_pointers")),
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
        # app/stream/drain.py is Faust's drain loop, copied without its per-record race.
        ("faust/", "mode/", "app/stream/drain.py"),
    ),
    (
        "Hookstream's agent glue (app/stream/: agents, acks, flushes)",
        ("app/stream/",),
    ),
)

# Frames that only schedule work for others: a sample is charged to its caller.
_GENERIC = (
    "asyncio/", "selectors.py", "threading.py", "contextlib.py", "functools.py",
    "<frozen", "weakref", "_weakrefset", "abc.py", "typing.py", "queue.py",
    "mode/utils/futures.py", "mode/utils/locks.py", "mode/utils/queues.py",
    "mode/services.py", "mode/threads.py", "mode/worker.py",
)  # fmt: skip
_LOOP = "event loop (uvloop callbacks, selectors, task switches)"

# The split by owner: the innermost frame that belongs to Faust's stack or to Hookstream
# decides; other libraries (pydantic, orjson, lz4, prometheus_client, ...) are charged to
# whichever of the two called them. Faust's needles are tried first: "faust/app/base.py"
# also holds "app/".
FAUST = "Faust's delivery (faust/, mode/, aiokafka/ frames)"
HOOKSTREAM = "Hookstream's own work (app/ frames)"
LOOP = "event loop and start-up frames (neither of the two)"
OWNERS = (FAUST, HOOKSTREAM, LOOP)
# app/stream/drain.py is Faust's drain loop (copied without its per-record race).
_FAUST_FRAMES = ("faust/", "mode/", "aiokafka/", "app/stream/drain.py")
_APP_FRAMES = ("(app/", f"({Path(__file__).resolve().parents[1]}/app/")
# Frames that start or run an event loop (the main one, or the consumer thread's) rather
# than deliver: a sample with nothing owned below them is the loop's own work.
_RUNNERS = ("mode/worker.py", "mode/threads.py", "faust/worker.py")
_STARTUP = ("_find_and_load",)
_TOP = ("run_worker", "cmd_worker", "main (", "<module>", "_run_code", "_run_module_as_main")


@dataclass(frozen=True, slots=True)
class Summary:
    """Shares of the sampled CPU time: by category and by function (self time)."""

    samples: int
    categories: list[tuple[str, float]]
    functions: list[tuple[str, float]]
    split: list[tuple[str, float]] = field(default_factory=list)

    def share(self, owner_name: str) -> float:
        """The share (%) of one owner of the split; 0 if it has none."""
        return dict(self.split).get(owner_name, 0.0)


# Work done for the execution history (issue 4) is charged to it wherever it happens
# (its own agent folds results into a Faust table): a frame of it anywhere decides.
_HISTORY = "execution history (app.core.history, its table and agent)"
_HISTORY_FRAMES = ("app/core/history.py", "app/stream/history_table.py", "fold_action_results")


def _category(frames: list[str]) -> str:
    """The category of a sample: see CATEGORIES (the execution history first)."""
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


def owner(frames: list[str]) -> str:
    """FAUST, HOOKSTREAM or LOOP: the innermost frame of either decides (see OWNERS)."""
    for frame in reversed(frames):
        if frame.startswith(_TOP) or any(r in frame for r in _RUNNERS):
            return LOOP
        if any(f in frame for f in _FAUST_FRAMES):
            return FAUST
        if any(a in frame for a in _APP_FRAMES):
            return HOOKSTREAM
    return LOOP


def summarize(path: Path, top: int = 15) -> Summary:
    """Read `py-spy record --format raw` output; import-time samples are left out."""
    by_category: Counter[str] = Counter()
    by_owner: Counter[str] = Counter()
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
        by_owner[owner(frames)] += n
        by_function[frames[-1].replace(".venv/lib/python3.11/site-packages/", "")] += n
    share = 100.0 / total if total else 0.0
    return Summary(
        total,
        [(name, n * share) for name, n in by_category.most_common()],
        [(name, n * share) for name, n in by_function.most_common(top)],
        [(name, by_owner[name] * share) for name in OWNERS],
    )
