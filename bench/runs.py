"""S5: run metrics through the run agent and its Faust table (issue 14).

500,000 ``RUN_METRIC`` records (four metrics each) from 2,000 runs across 20 projects,
interleaved as live runs log, pre-filled on a run-events topic of 4 partitions, then:

- S0f-runs: the same records through the Faust no-op agent (bench/faust_floor.py, Faust's
  defaults), the baseline;
- S5: a fresh ``hookstream worker`` with 100 run automations (threshold, change and
  z-score on project and entity scopes, run states) over the pre-filled topic.

Throughput is records over the span from the first decision to the last job: sentinel
runs open and close every partition (one record each, a sentinel automation fires on
each), so the span covers every record although firings are sparse. Every job id is
checked against the offline run pipeline. Memory per 1,000 active runs: the worker's
RSS growth from ready to the end over the runs it holds, and the run-state bytes the
table stores per run.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import uvloop

from app.contract.automations import Automation, parse_automation
from app.contract.jobs import parse_action_job
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline, SourceInfo
from app.core.run_pipeline import MemoryRunStore, RunPipeline, RunRules
from app.kafka.admin import TopicSpec, ensure_topics
from app.kafka.automations import apply_automations
from app.kafka.clients import producer
from app.serialization import dumps, loads
from bench.kafka_ops import read_records, wait_total
from bench.machine import cpu_seconds, rss_kib
from bench.workload import epoch_seconds, partition_of
from tests.integration.harness import WorkerProcess
from tests.support import isolated_settings

__all__ = [
    "S5_OF_FLOOR",
    "RunsResult",
    "run_automations",
    "run_records",
    "s5",
    "s5_markdown",
    "s5_text",
]

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS: Final = 4
ENTITY: Final = "bench"
PROJECTS: Final = 20
S5_OF_FLOOR: Final = 0.7
SENTINEL: Final = "bench_sentinel"


@dataclass(slots=True)
class RunsResult:
    """S5 and its baseline, with memory figures."""

    records: int
    runs: int
    automations: int
    floor_seconds: float
    seconds: float
    expected_jobs: int
    missing_jobs: int
    unexpected_jobs: int
    duplicate_jobs: int
    rss_ready_kib: int
    rss_end_kib: int
    state_bytes_per_run: float
    cpu_seconds: float

    @property
    def floor_rps(self) -> float:
        """S0f-runs records per second."""
        return self.records / self.floor_seconds if self.floor_seconds > 0 else 0.0

    @property
    def rps(self) -> float:
        """S5 records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        """S5 against S0f-runs."""
        return self.rps / self.floor_rps if self.floor_rps else 0.0

    @property
    def rss_kib_per_1000_runs(self) -> float:
        """Worker RSS growth over the run per 1,000 runs held."""
        return (self.rss_end_kib - self.rss_ready_kib) * 1000 / self.runs if self.runs else 0.0


def _scope(n: int) -> dict[str, str]:
    if n % 20 == 19:
        return {"type": "entity", "entity": ENTITY}
    return {"type": "project", "entity": ENTITY, "project": f"project-{n % PROJECTS}"}


def run_automations(count: int) -> list[Automation]:
    """`count` run automations of every kind, spread over the projects, plus the sentinel."""
    hook = {
        "type": "webhook",
        "url": "https://hooks.example.com/run",
        "payload": '{"run": "${run_path}", "metric": "${metric_name}", "v": "${metric_value}"}',
    }
    out = []
    rng = random.Random(5)
    for n in range(count):
        kind = n % 10
        metric = ("loss", "acc", "grad_norm", "lr")[n % 4]
        if kind < 4:
            event = "RUN_METRIC"
            spec: dict[str, Any] = {"threshold_filter": {
                "name": metric, "agg_op": [None, "AVERAGE", "MIN", "MAX"][kind],
                "window_size": rng.choice([1, 5, 10, 20]), "cmp_op": rng.choice(["$lt", "$gt"]),
                "threshold": rng.choice([0.2, 0.5, 0.8])}}  # fmt: skip
        elif kind < 7:
            event = "RUN_METRIC_CHANGE"
            spec = {"change_filter": {
                "name": metric, "agg_op": "AVERAGE", "current_window_size": rng.choice([3, 5]),
                "prior_window_size": rng.choice([5, 10]), "change_amount": 0.2,
                "change_type": rng.choice(["ABSOLUTE", "RELATIVE"]),
                "change_dir": rng.choice(["INCREASE", "DECREASE", "ANY"])}}  # fmt: skip
        elif kind < 9:
            event = "RUN_METRIC_ZSCORE"
            spec = {"zscore_filter": {
                "name": metric, "window_size": rng.choice([10, 30]), "threshold": 2.5,
                "change_dir": "ANY"}}  # fmt: skip
        else:
            out.append(
                parse_automation(
                    {
                        "id": f"run-{n:03d}", "name": f"run {n}", "event": "RUN_STATE",
                        "scope": _scope(n), "action": hook,
                        "filter": {"run_state_filter": {"states": ["FINISHED", "FAILED"]}},
                    }
                )
            )  # fmt: skip
            continue
        out.append(
            parse_automation(
                {
                    "id": f"run-{n:03d}", "name": f"run {n}", "event": event, "scope": _scope(n),
                    "filter": {"run_metric_filter": spec}, "action": hook,
                }
            )
        )  # fmt: skip
    out.append(
        parse_automation(
            {
                "id": "bench-sentinel", "name": "sentinel", "event": "RUN_METRIC",
                "scope": {"type": "entity", "entity": ENTITY}, "action": hook,
                "filter": {"run_metric_filter": {"threshold_filter": {
                    "name": SENTINEL, "cmp_op": "$gte", "threshold": 1}}},
            }
        )
    )  # fmt: skip
    return out


def _sentinels(tag: str) -> list[tuple[bytes, bytes]]:
    """One sentinel record per partition (a run of its own, keyed onto that partition)."""
    out: dict[int, tuple[bytes, bytes]] = {}
    n = 0
    while len(out) < PARTITIONS:
        run_id = f"sentinel-{tag}-{n}"
        key = f"{ENTITY}/sentinels/{run_id}".encode()
        n += 1
        partition = partition_of(key, PARTITIONS)
        if partition in out:
            continue
        value = {
            "event_type": "RUN_METRIC", "occurred_at": "2026-11-26T10:00:00Z",
            "entity": ENTITY, "project": "sentinels", "run": {"id": run_id}, "step": 0,
            "metrics": {SENTINEL: 1},
        }  # fmt: skip
        out[partition] = (key, dumps(value))
    return [out[p] for p in range(PARTITIONS)]


def run_records(total: int, runs: int, *, seed: int = 3) -> list[tuple[bytes, bytes]]:
    """(key, value): sentinels, then `total` RUN_METRIC records of `runs` runs, sentinels."""
    rng = random.Random(seed)
    steps = max(1, total // runs)
    walks = [[1.0, 0.3, 1.0, 0.01] for _ in range(runs)]
    keys = [f"{ENTITY}/project-{n % PROJECTS}/run-{n}".encode() for n in range(runs)]
    heads = [
        {"id": f"run-{n}", "name": f"run-{n}", "user": "bench", "tags": ["bench"],
         "config": {"lr": 0.01, "batch": 32}, "state": "running"}
        for n in range(runs)
    ]  # fmt: skip
    out = _sentinels("start")
    for step in range(steps):
        stamp = f"2026-11-26T{10 + step // 3600:02d}:{step // 60 % 60:02d}:{step % 60:02d}Z"
        for n in range(runs):
            walk = walks[n]
            walk[0] = max(0.0, walk[0] + rng.gauss(-0.003, 0.05))
            walk[1] = min(1.0, max(0.0, walk[1] + rng.gauss(0.002, 0.03)))
            walk[2] = abs(walk[2] + rng.gauss(0.0, 0.2))
            value = {
                "event_type": "RUN_METRIC", "occurred_at": stamp, "entity": ENTITY,
                "project": f"project-{n % PROJECTS}", "run": heads[n], "step": step,
                "metrics": {"loss": round(walk[0], 5), "acc": round(walk[1], 5),
                            "grad_norm": round(walk[2], 5), "lr": walk[3]},
            }  # fmt: skip
            out.append((keys[n], dumps(value)))
    out += _sentinels("end")
    return out


def _expected(
    automations: list[Automation], records: list[tuple[bytes, bytes]]
) -> tuple[set[str], float]:
    """The job ids the offline run pipeline computes, and its run-state bytes per run."""
    index = AutomationIndex(automations)
    pipeline = RunPipeline(Pipeline(index, _TOPICS, 1 << 20), RunRules(list(index)))
    store = MemoryRunStore()
    offsets = [0] * PARTITIONS
    ids: set[str] = set()
    for key, value in records:
        partition = partition_of(key, PARTITIONS)
        offset = offsets[partition]
        offsets[partition] += 1
        result = pipeline.process(value, store=store, source=SourceInfo("r", partition, offset))
        ids.update(parse_action_job(out.value).job_id for out in result.outbounds)
    sizes = [len(memory.to_bytes()) for memory in store.data.values()]
    return ids, (sum(sizes) / len(sizes) if sizes else 0.0)


_TOPICS = {"webhook": "w", "notification": "n", "queue_job": "q"}


async def _prefill(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    async with producer(
        bootstrap, linger_ms=20, max_batch_size=512 * 1024, compression_type="lz4"
    ) as prod:
        last = []
        for n, (key, value) in enumerate(records):
            future = await prod.send(topic, value, key=key)
            if n % 5000 == 0:
                last.append(future)
        await prod.flush()
        await asyncio.gather(*last)


def _floor(bootstrap: str, topic: str, expect: int, workdir: Path, tag: str) -> float:
    """S0f over the run-events topic: seconds from the first record to the last."""
    group = f"bench-floor-runs-{tag}"
    command = [
        sys.executable, "-m", "bench.faust_floor", "--bootstrap", bootstrap, "--group", group,
        "--topics", topic, "--expect", str(expect), "--datadir", str(workdir / f"{group}-data"),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, check=True, timeout=900, capture_output=True, text=True
    )
    for line in reversed((done.stdout + done.stderr).splitlines()):
        parts = line.split()
        if "floor" in parts:
            return float(parts[parts.index("floor") + 2])
    raise RuntimeError(f"no floor line in:\n{done.stdout[-2000:]}")


def s5(
    bootstrap: str, workdir: Path, *, records: int, runs: int, automations: int, say: Any = print
) -> RunsResult:
    """Pre-fill, run the floor, run the worker; every figure of S5."""
    tag = uuid.uuid4().hex[:8]
    folder = workdir / f"s5-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    settings = isolated_settings(bootstrap, f"{tag}s5", folder, topic_partitions=PARTITIONS)
    rules = run_automations(automations)
    stream = run_records(records, runs)
    say(f"S5: {len(stream):,} run records of {runs:,} runs; offline expectation")
    expected, state_bytes = _expected(rules, stream)
    asyncio.run(ensure_topics(settings, [TopicSpec(settings.run_events_topic, PARTITIONS)]))
    asyncio.run(_prefill(bootstrap, settings.run_events_topic, stream))
    say(f"S5: {len(expected):,} jobs expected; S0f Faust no-op agent over the run records")
    floor = _floor(bootstrap, settings.run_events_topic, len(stream), folder, tag)
    say(f"S5: {len(stream) / floor:,.0f} records/s S0f; hookstream worker")
    asyncio.run(apply_automations(settings, rules))
    worker = WorkerProcess(settings, folder / "worker.log")
    topic = settings.webhook_topic
    try:
        worker.start(timeout=180)
        assert worker.proc is not None
        rss_ready, _ = rss_kib(worker.proc.pid)
        cpu_ready = sum(cpu_seconds(worker.proc.pid))
        got = uvloop.run(wait_total(bootstrap, [topic], len(expected), 900))
        if got < len(expected):
            raise TimeoutError(f"S5: {got} of {len(expected)} jobs\n{worker.log_tail()}")
        rss_end, _ = rss_kib(worker.proc.pid)
        cpu = sum(cpu_seconds(worker.proc.pid)) - cpu_ready
    finally:
        worker.stop()
    out = asyncio.run(read_records(bootstrap, [topic]))
    jobs = [loads(r.value) for r in out if r.value is not None]
    ids = [job["job_id"] for job in jobs]
    sentinel_jobs = [
        (job, r.timestamp) for job, r in zip(jobs, out, strict=True)
        if job["automation_id"] == "bench-sentinel"
    ]  # fmt: skip
    first = min(epoch_seconds(job["created_at"]) for job, _ in sentinel_jobs)
    last = max(ts for _, ts in sentinel_jobs) / 1000
    seen = set(ids)
    return RunsResult(
        records=len(stream),
        runs=runs,
        automations=automations,
        floor_seconds=floor,
        seconds=max(last - first, 1e-6),
        expected_jobs=len(expected),
        missing_jobs=len(expected - seen),
        unexpected_jobs=len(seen - expected),
        duplicate_jobs=len(ids) - len(seen),
        rss_ready_kib=rss_ready,
        rss_end_kib=rss_end,
        state_bytes_per_run=state_bytes,
        cpu_seconds=cpu,
    )


def _lines(r: RunsResult) -> list[tuple[str, str]]:
    verdict = "PASS" if r.ratio >= S5_OF_FLOOR else "FAIL"
    return [
        ("S0f-runs Faust no-op agent over the run records", f"{r.floor_rps:,.0f} records/s"),
        (
            f"S5 {r.records:,} RUN_METRIC from {r.runs:,} runs, {r.automations} run automations",
            f"{r.rps:,.0f} records/s = {r.ratio:.2f} of S0f (target >= {S5_OF_FLOOR}: {verdict})",
        ),
        (
            "S5 jobs",
            f"{r.expected_jobs:,} expected, {r.missing_jobs} missing, "
            f"{r.unexpected_jobs} unexpected, {r.duplicate_jobs} duplicated",
        ),
        ("S5 worker CPU", f"{1e6 * r.cpu_seconds / r.records:,.1f} us per record"),
        (
            "S5 memory per 1,000 active runs",
            f"{r.rss_kib_per_1000_runs / 1024:,.1f} MiB RSS growth; run state "
            f"{r.state_bytes_per_run * 1000 / 1024:,.0f} KiB in the table",
        ),
    ]


def s5_text(r: RunsResult) -> str:
    """S5 as terminal lines."""
    # "- " rather than an indent: indented lines of the report are target verdicts.
    return "\n".join(f"- {name}: {figure}" for name, figure in _lines(r))


def s5_markdown(r: RunsResult) -> list[str]:
    """S5 as a markdown section."""
    out = ["## S5: run metrics (issue 14)", "", "| scenario | figure |", "|---|---|"]
    out += [f"| {name} | {figure} |" for name, figure in _lines(r)]
    out += ["", (__doc__ or "").split("\n\n", 1)[1].strip(), ""]
    return out
