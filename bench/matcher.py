"""Matching and the whole decision code without Kafka: events per second in one process."""

from __future__ import annotations

import time
from collections.abc import Sequence

from app.contract.automations import Automation, parse_automation
from app.contract.events import Event, parse_event
from app.core.documents import filter_document
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.serialization import dumps, loads
from bench.workload import BenchEvent

__all__ = ["TOPICS", "crowded_eps", "expected_job_ids", "matcher_eps", "pipeline_eps"]

TOPICS = {"webhook": "w", "notification": "n", "queue_job": "q"}
_MAX = 1 << 20


def _best_rate(count: int, seconds: list[float]) -> float:
    return count / min(seconds)


def matcher_eps(
    events: Sequence[BenchEvent], automations: Sequence[Automation], repeat: int = 3
) -> tuple[float, float]:
    """(events/s, candidates per event) of AutomationIndex.match on parsed events."""
    index = AutomationIndex(automations)
    parsed: list[Event] = [parse_event(e.value, _MAX)[0] for e in events]
    match = index.match
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for event in parsed:
            match(event, filter_document(event))
        times.append(time.perf_counter() - started)
    candidates = sum(len(index.candidates(event)) for event in parsed) / max(len(parsed), 1)
    return _best_rate(len(parsed), times), candidates


def pipeline_eps(
    events: Sequence[BenchEvent], automations: Sequence[Automation], repeat: int = 3
) -> float:
    """Events/s of Pipeline.process from raw bytes (parse, alias state, match, render)."""
    pipeline = Pipeline(AutomationIndex(automations), TOPICS, _MAX)
    source = SourceInfo("bench")
    times = []
    for _ in range(repeat):
        aliases = MemoryAliasStore()
        process = pipeline.process
        started = time.perf_counter()
        for event in events:
            process(event.value, aliases=aliases, source=source)
        times.append(time.perf_counter() - started)
    return _best_rate(len(events), times)


def expected_job_ids(events: Sequence[BenchEvent], automations: Sequence[Automation]) -> set[str]:
    """The job ids the worker must produce, computed offline by the same Pipeline."""
    pipeline = Pipeline(AutomationIndex(automations), TOPICS, _MAX)
    aliases = MemoryAliasStore()
    source = SourceInfo("bench")
    out: set[str] = set()
    for event in events:
        result = pipeline.process(event.value, aliases=aliases, source=source)
        if result.dead_letter is not None:
            raise RuntimeError(f"benchmark event refused: {result.reason}")
        for outbound in result.outbounds:
            out.add(outbound.job.job_id)
    return out


def crowded_eps(events: Sequence[BenchEvent], count: int, repeat: int = 3) -> tuple[float, float]:
    """(guard index, scanning every filter) events/s with `count` automations on one scope."""
    # Half have an exact alias filter, half an anchored alias regex (one team each); every
    # alias event is moved into that registry, a quarter with an alias one of them wants.
    automations = [
        parse_automation(
            {
                "id": f"crowd-{i:05d}",
                "name": f"team {i}",
                "event": "ADD_ARTIFACT_ALIAS",
                "scope": {"type": "registry", "entity": "acme", "registry": "model"},
                "filter": {"alias": f"team-{i}"} if i % 2 else {"alias": {"$regex": f"^rel-{i}-"}},
                "action": {"type": "queue_job", "queue": "q", "job": "j"},
            }
        )
        for i in range(count)
    ]
    index = AutomationIndex(automations)
    aliases = ("production", "staging", f"team-{count - 1}", "rel-0-eu")
    parsed: list[Event] = []
    for n, bench_event in enumerate(events):
        data = loads(bench_event.value)
        if data["event_type"] != "ADD_ARTIFACT_ALIAS":
            continue
        data.update(registry="model", project="wandb-registry-model", alias=aliases[n % 4])
        parsed.append(parse_event(dumps(data), _MAX)[0])
    docs = [filter_document(event) for event in parsed]
    pairs = list(zip(parsed, docs, strict=True))
    guarded, scanned = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        for event, doc in pairs:
            index.match(event, doc)
        guarded.append(time.perf_counter() - started)
        started = time.perf_counter()
        for event, doc in pairs:
            # What the index did before guards: every in-scope filter, in id order.
            [c for c in index.candidates(event) if c.filter.matches(doc)]
        scanned.append(time.perf_counter() - started)
    return _best_rate(len(pairs), guarded), _best_rate(len(pairs), scanned)
