"""S0-S4 against a real broker; each scenario returns plain figures for the report."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.contract.automations import Automation
from app.kafka.admin import TopicSpec, ensure_topics
from app.kafka.automations import apply_automations
from app.kafka.clients import topic_partitions
from app.serialization import loads
from app.settings import Settings
from bench import workload
from bench.kafka_ops import GroupLag, prefill, read_records, wait_total
from bench.machine import cpu_seconds, rss_kib
from bench.matcher import expected_job_ids
from bench.workload import BenchEvent, epoch_seconds
from tests.integration.harness import WorkerProcess
from tests.support import isolated_settings

__all__ = [
    "Bench",
    "LagVerdict",
    "LatencyResult",
    "Throughput",
    "WorkerRun",
    "cleanup",
    "faust_floor",
    "floor_at_rate",
    "latency",
    "passthrough",
    "prepare",
    "worker_run",
]

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4


@dataclass(slots=True)
class Bench:
    """One benchmark run: its broker, folder, unique id and the pre-filled event topics."""

    bootstrap: str
    workdir: Path
    run_id: str
    events: list[BenchEvent]
    settings: Settings
    prefill_seconds: float = 0.0

    @property
    def registry_topic(self) -> str:
        """The pre-filled registry event topic."""
        return self.settings.registry_events_topic

    @property
    def artifact_topic(self) -> str:
        """The pre-filled artifact event topic."""
        return self.settings.artifact_events_topic


@dataclass(frozen=True, slots=True)
class Throughput:
    """Events through a pipeline over the span from its first to its last output record."""

    events: int
    outputs: int
    seconds: float
    cpu_seconds: float = 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """CPU microseconds the process spent per event (0 when not measured)."""
        return 1e6 * self.cpu_seconds / self.events if self.events else 0.0

    @property
    def eps(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class WorkerRun:
    """A real `hookstream worker` over the pre-filled events."""

    automations: int
    throughput: Throughput
    expected_jobs: int
    missing_jobs: int
    unexpected_jobs: int
    duplicate_jobs: int
    dead_letters: int
    rss_ready_kib: int
    rss_end_kib: int
    rss_peak_kib: int
    startup_seconds: float
    cpu_seconds: float
    cpu_system_seconds: float
    wall_seconds: float
    profile: Path | None = None


# S3's "without growing consumer lag". Lag of committed offsets is a saw-tooth: it climbs
# between commits (every 2.8 s by Faust's default) and falls at each. Its low points,
# just after a commit, are the backlog the consumer has not yet got through; a consumer
# that falls behind raises them steadily. The lag is *growing* if the lowest lag of the
# last LAG_WINDOW seconds of the load exceeds the lowest lag of the first LAG_WINDOW
# seconds after the warm-up by more than LAG_TOLERANCE_SECONDS of events. A window
# holds several commits, and samples come every LAG_POLL s, so each window's low point
# is taken within about LAG_POLL of a commit in both windows.
LAG_WINDOW = 10.0
LAG_TOLERANCE_SECONDS = 2.0  # over 60 s: a worker short of the rate by 4% or more
LAG_POLL = 0.5
# The load generator must have offered at least this share of the asked rate, or the
# rate was not sustained and the run proves nothing about it.
RATE_SHARE = 0.95


@dataclass(frozen=True, slots=True)
class LagVerdict:
    """Consumer lag over one steady rate: the two windows compared, and the trend."""

    early_low: int  # lowest lag in the first window after the warm-up
    late_low: int  # lowest lag in the last window of the load
    peak: int  # highest lag over the measured span (information)
    tolerance: int
    slope: float  # least-squares lag growth over the measured span, events per second
    end_lag: int  # lag at the last sample of the load
    offered_eps: float  # events per second the generator actually produced

    @property
    def growing(self) -> bool:
        """True if the lag's low points rose by more than the tolerance."""
        return self.late_low > self.early_low + self.tolerance


@dataclass(slots=True)
class LatencyResult:
    """Event-to-job latency at one steady rate, in milliseconds, and the worker's lag."""

    rate: int
    seconds: float
    jobs: int
    create_ms: list[float] = field(default_factory=list)
    receive_ms: list[float] = field(default_factory=list)
    warmup: float = 0.0
    # (seconds since the load started, records in the event topics, records committed)
    lag_samples: list[tuple[float, int, int]] = field(default_factory=list)
    load_seconds: float = 0.0  # from the first event produced to the generator's exit

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        """Nearest-rank percentile q (0-1); 0 for no values."""
        if not values:
            return 0.0
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def p(self, which: str, q: float) -> float:
        """Percentile q (0-1) of 'create' or 'receive' latencies."""
        return self._pct(self.create_ms if which == "create" else self.receive_ms, q)

    def lag(self) -> LagVerdict | None:
        """The lag verdict over the measured span (warm-up left out); None without samples."""
        start, end = self.warmup, self.load_seconds
        measured = [(t, e, e - c) for t, e, c in self.lag_samples if start <= t <= end]
        if len(measured) < 2:
            return None
        window = min(LAG_WINDOW, (end - start) / 3)
        early = [lag for t, _, lag in measured if t <= start + window] or [measured[0][2]]
        late = [lag for t, _, lag in measured if t >= end - window] or [measured[-1][2]]
        span = measured[-1][0] - measured[0][0]
        offered = (measured[-1][1] - measured[0][1]) / span if span > 0 else 0.0
        return LagVerdict(
            early_low=min(early),
            late_low=min(late),
            peak=max(lag for _, _, lag in measured),
            tolerance=round(self.rate * LAG_TOLERANCE_SECONDS),
            slope=_slope([(t, float(lag)) for t, _, lag in measured]),
            end_lag=measured[-1][2],
            offered_eps=offered,
        )

    def sustained(self) -> bool:
        """The rate was offered (RATE_SHARE of it), jobs came out, and lag did not grow."""
        verdict = self.lag()
        return (
            verdict is not None
            and self.jobs > 0
            and verdict.offered_eps >= RATE_SHARE * self.rate
            and not verdict.growing
        )


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 for fewer than two distinct x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def prepare(bootstrap: str, workdir: Path, events: int) -> Bench:
    """Generate the events, create the shared event topics and pre-fill them."""
    run_id = uuid.uuid4().hex[:8]
    stream = list(workload.events(events, prefix=f"b{run_id}"))
    framed = workload.with_sentinels(stream, PARTITIONS, prefix=f"b{run_id}")
    settings = isolated_settings(bootstrap, f"{run_id}ev", workdir, topic_partitions=PARTITIONS)
    asyncio.run(ensure_topics(settings))
    started = time.perf_counter()
    asyncio.run(
        prefill(bootstrap, settings.registry_events_topic, settings.artifact_events_topic, framed)
    )
    return Bench(bootstrap, workdir, run_id, framed, settings, time.perf_counter() - started)


def _span(timestamps: list[int]) -> float:
    """Seconds from the first to the last of millisecond timestamps."""
    return (max(timestamps) - min(timestamps)) / 1000 if timestamps else 0.0


def passthrough(bench: Bench, tag: str = "", timeout: float = 600.0) -> Throughput:
    """S0: raw aiokafka consume-to-produce of the same events, in its own process."""
    out_topic = f"bench-s0-{bench.run_id}{tag}"
    asyncio.run(ensure_topics(bench.settings, [TopicSpec(out_topic, PARTITIONS)]))
    command = [
        sys.executable,
        "-m",
        "bench.passthrough",
        "--bootstrap",
        bench.bootstrap,
        "--group",
        f"bench-s0-{bench.run_id}{tag}",
        "--topics",
        f"{bench.registry_topic},{bench.artifact_topic}",
        "--out-topic",
        out_topic,
        "--expect",
        str(len(bench.events)),
        "--linger-ms",
        str(bench.settings.producer_linger_ms),
    ]
    done = subprocess.run(
        command, cwd=ROOT, check=True, timeout=timeout, capture_output=True, text=True
    )
    cpu = _last_figure(done.stdout, "cpu")
    records = asyncio.run(read_records(bench.bootstrap, [out_topic]))
    span = _span([r.timestamp for r in records])
    return Throughput(len(bench.events), len(records), span, cpu)


def _last_figure(output: str, label: str, index: int = 1) -> float:
    """The figure `index` places after `label` on the last line that holds the label."""
    # Faust's worker sends print() through its logger: the label may follow a prefix.
    for line in reversed(output.splitlines()):
        parts = line.split()
        if label in parts:
            return float(parts[parts.index(label) + index])
    raise RuntimeError(f"no {label!r} line in:\n{output[-2000:]}")


def _floor(bench: Bench, group: str, settings: Settings, expect: int) -> list[str]:
    """The command of bench.faust_floor: `expect` events from the settings' event topics."""
    return [
        sys.executable,
        "-m",
        "bench.faust_floor",
        "--bootstrap",
        bench.bootstrap,
        "--group",
        group,
        "--topics",
        f"{settings.registry_events_topic},{settings.artifact_events_topic}",
        "--expect",
        str(expect),
        "--datadir",
        str(bench.workdir / f"{group}-data"),
    ]


def faust_floor(bench: Bench, tag: str = "", timeout: float = 600.0) -> Throughput:
    """S0f: the same events through a Faust agent that does nothing (Faust's own cost)."""
    command = _floor(bench, f"bench-floor-{bench.run_id}{tag}", bench.settings, len(bench.events))
    done = subprocess.run(
        command, cwd=ROOT, check=True, timeout=timeout, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    seconds = _last_figure(output, "floor", 2)
    cpu = _last_figure(output, "floor", 3)
    return Throughput(len(bench.events), 0, seconds, cpu)


class _Profiler:
    """py-spy attached to the worker as soon as its process exists."""

    def __init__(self, worker: WorkerProcess, out: Path, rate: int = 250) -> None:
        self.worker = worker
        self.out = out
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._attach, daemon=True)
        self._thread.start()

    def _attach(self) -> None:
        """Start py-spy on the worker's pid once the process exists."""
        deadline = time.monotonic() + 60
        while self.worker.proc is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.worker.proc is None:
            return
        spy = Path(sys.executable).with_name("py-spy")
        self.proc = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(self.worker.proc.pid),
                "--rate",
                str(self.rate),
                "--nonblocking",
                "--gil",
                "--function",
                "--format",
                "raw",
                "--output",
                str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Path | None:
        """Stop sampling and write the collapsed stacks; None if py-spy never ran."""
        self._thread.join(5)
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        return self.out if self.out.exists() else None


def worker_run(
    bench: Bench,
    automations: list[Automation],
    label: str,
    *,
    timeout: float = 900.0,
    profile: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> WorkerRun:
    """S1/S2: a fresh worker (own group, action topics) through every pre-filled event."""
    uid = f"{bench.run_id}{label}"
    folder = bench.workdir / uid
    folder.mkdir(parents=True, exist_ok=True)
    # Profiled runs fill their own event topics once the worker is ready (and sampled),
    # so the profile holds the steady state rather than the worker's start.
    shared = (
        {}
        if profile is not None
        else {
            "registry_events_topic": bench.registry_topic,
            "artifact_events_topic": bench.artifact_topic,
        }
    )
    settings = isolated_settings(
        bench.bootstrap, uid, folder, topic_partitions=PARTITIONS, **shared, **(overrides or {})
    )
    expected = expected_job_ids(bench.events, automations)
    asyncio.run(ensure_topics(settings))
    asyncio.run(apply_automations(settings, automations))
    worker = WorkerProcess(settings, folder / "worker.log")
    profiler: _Profiler | None = None
    action_topics = list(settings.action_topics.values())
    started = time.monotonic()
    try:
        worker.start(timeout=180)
        assert worker.proc is not None
        startup = time.monotonic() - started
        rss_ready, _ = rss_kib(worker.proc.pid)
        if profile is not None:
            # Sampling starts once the worker is ready: the profile is the steady state.
            profiler = _Profiler(worker, profile)
            time.sleep(1.0)
            asyncio.run(
                prefill(
                    bench.bootstrap,
                    settings.registry_events_topic,
                    settings.artifact_events_topic,
                    bench.events,
                )
            )
        cpu_ready = cpu_seconds(worker.proc.pid)
        ready_at = time.monotonic()
        got = uvloop.run(wait_total(bench.bootstrap, action_topics, len(expected), timeout))
        if got < len(expected):
            raise TimeoutError(f"{label}: {got} of {len(expected)} jobs in {timeout}s")
        rss_end, rss_peak = rss_kib(worker.proc.pid)
        user, system = cpu_seconds(worker.proc.pid)
        cpu_user, cpu_system = user - cpu_ready[0], system - cpu_ready[1]
        wall = time.monotonic() - ready_at
        profiled = profiler.stop() if profiler is not None else None
    finally:
        worker.stop()
    records = asyncio.run(read_records(bench.bootstrap, action_topics))
    dead = asyncio.run(read_records(bench.bootstrap, [settings.dlq_topic]))
    jobs = [loads(r.value) for r in records if r.value is not None]
    ids = [job["job_id"] for job in jobs]
    # The worker decides an event (the job's created_at) before it queues the job (its
    # CreateTime) at the end of a batch: the span runs from the first decision to the
    # last job queued, so batching cannot hide the start of consumption.
    first_ms = min((epoch_seconds(job["created_at"]) * 1000 for job in jobs), default=0.0)
    last_ms = max((r.timestamp for r in records), default=0)
    seen = set(ids)
    return WorkerRun(
        automations=len(automations),
        throughput=Throughput(
            len(bench.events),
            len(records),
            max(last_ms - first_ms, 0.0) / 1000,
            cpu_user + cpu_system,
        ),
        expected_jobs=len(expected),
        missing_jobs=len(expected - seen),
        unexpected_jobs=len(seen - expected),
        duplicate_jobs=len(ids) - len(seen),
        dead_letters=len(dead),
        rss_ready_kib=rss_ready,
        rss_end_kib=rss_end,
        rss_peak_kib=rss_peak,
        startup_seconds=startup,
        cpu_seconds=cpu_user + cpu_system,
        cpu_system_seconds=cpu_system,
        wall_seconds=wall,
        profile=profiled,
    )


def _loadgen(bench: Bench, settings: Settings, rate: int, seconds: float, prefix: str) -> list[str]:
    """The command of bench.loadgen: `rate` events/s for `seconds` to the settings' topics."""
    return [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--bootstrap",
        bench.bootstrap,
        "--registry-topic",
        settings.registry_events_topic,
        "--artifact-topic",
        settings.artifact_events_topic,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--prefix",
        prefix,
    ]


async def _sample_lag(
    probe: GroupLag, samples: list[tuple[float, int, int]], stop: asyncio.Event
) -> None:
    """Append (monotonic time, records in the topics, records committed) every LAG_POLL s."""
    while not stop.is_set():
        at = time.monotonic()
        ends, committed = await probe.sample()
        samples.append((at, ends, committed))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LAG_POLL)


async def _measure_rate(
    bench: Bench, settings: Settings, rate: int, seconds: float, warmup: float
) -> LatencyResult:
    """One steady rate: job latencies from the action topics, lag of the worker's group."""
    topics = list(settings.action_topics.values())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bench.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    probe = GroupLag(
        bench.bootstrap,
        [settings.registry_events_topic, settings.artifact_events_topic],
        settings.app_id,
    )
    await consumer.start()
    await probe.start()
    result = LatencyResult(rate, seconds, 0, warmup=warmup)
    samples: list[tuple[float, int, int]] = []
    stop = asyncio.Event()
    sampler: asyncio.Task[None] | None = None
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            tps += await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        prefix = f"lat{rate}-{bench.run_id}"
        sampler = asyncio.create_task(_sample_lag(probe, samples, stop))
        gen = await asyncio.create_subprocess_exec(
            *_loadgen(bench, settings, rate, seconds + warmup, prefix),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        # The warm-up runs from the first job's event: the generator renders its events
        # before it starts its clock, which takes seconds at high rates.
        first: float | None = None
        done_at: float | None = None
        load_ended = 0.0
        while done_at is None or time.monotonic() < done_at:
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                for record in records:
                    job = loads(record.value)
                    if not job["event_id"].startswith(prefix):
                        continue
                    occurred = epoch_seconds(job["event"]["occurred_at"])
                    first = occurred if first is None else min(first, occurred)
                    if occurred < first + warmup:
                        continue
                    result.jobs += 1
                    result.create_ms.append((record.timestamp / 1000 - occurred) * 1000)
                    result.receive_ms.append((now - occurred) * 1000)
            if done_at is None and gen.returncode is not None:
                load_ended = time.monotonic()
                done_at = load_ended + 2.0  # drain the last jobs
        stop.set()
        await sampler
        _place_samples(result, samples, load_ended)
        return result
    finally:
        stop.set()
        if sampler is not None and not sampler.done():
            sampler.cancel()
        await probe.stop()
        await consumer.stop()


def _place_samples(
    result: LatencyResult, samples: list[tuple[float, int, int]], load_ended: float
) -> None:
    """Put the lag samples on the load's clock: 0 is the first sample with new events."""
    if not samples:
        return
    initial = samples[0][1]
    started = next((at for at, ends, _ in samples if ends > initial), samples[0][0])
    # The last sample before the first new events is the load's start, give or take a poll.
    before = [at for at, _, _ in samples if at < started]
    origin = before[-1] if before else started
    result.lag_samples = [(at - origin, e, c) for at, e, c in samples if at >= origin]
    result.load_seconds = load_ended - origin


def latency(
    bench: Bench,
    automations: list[Automation],
    rates: list[int],
    seconds: float,
    warmup: float = 2.0,
) -> tuple[list[LatencyResult], int]:
    """S3: one worker, steady loads; returns the results and the worker's RSS in KiB."""
    uid = f"{bench.run_id}lat"
    folder = bench.workdir / uid
    folder.mkdir(parents=True, exist_ok=True)
    settings = isolated_settings(bench.bootstrap, uid, folder, topic_partitions=PARTITIONS)
    asyncio.run(ensure_topics(settings))
    asyncio.run(apply_automations(settings, automations))
    worker = WorkerProcess(settings, folder / "worker.log")
    results = []
    try:
        worker.start(timeout=180)
        assert worker.proc is not None
        for rate in rates:
            results.append(uvloop.run(_measure_rate(bench, settings, rate, seconds, warmup)))
        rss, _ = rss_kib(worker.proc.pid)
    finally:
        worker.stop()
    return results, rss


@dataclass(frozen=True, slots=True)
class FloorAtRate:
    """The Faust no-op agent under a steady load: did it keep up, at what CPU cost."""

    rate: int
    events: int
    behind_seconds: float
    cpu_seconds: float

    @property
    def cpu_us_per_event(self) -> float:
        """CPU microseconds per event."""
        return 1e6 * self.cpu_seconds / self.events if self.events else 0.0


def floor_at_rate(bench: Bench, rate: int, seconds: float) -> FloorAtRate:
    """The S3 load against bench.faust_floor: Faust's own cost at that steady rate."""
    uid = f"{bench.run_id}fl{rate}"
    settings = isolated_settings(
        bench.bootstrap, uid, bench.workdir / uid, topic_partitions=PARTITIONS
    )
    asyncio.run(ensure_topics(settings))
    total = int(rate * seconds)
    floor = subprocess.Popen(
        _floor(bench, f"bench-floor-{uid}", settings, total),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8.0)  # the consumer group forms before the load starts
        load = _loadgen(bench, settings, rate, seconds, f"floor{rate}")
        subprocess.run(load, cwd=ROOT, check=True, capture_output=True, timeout=seconds + 120)
        ended = time.monotonic()
        output, _ = floor.communicate(timeout=seconds + 300)
        behind = time.monotonic() - ended
    finally:
        if floor.poll() is None:
            floor.kill()
            floor.wait(10)
    return FloorAtRate(rate, total, behind, _last_figure(output, "floor", 3))


def cleanup(bootstrap: str, run_id: str) -> int:
    """Delete every topic this run created (their names hold the run id)."""
    return asyncio.run(_delete_topics(bootstrap, run_id))


async def _delete_topics(bootstrap: str, run_id: str) -> int:
    """Delete the topics whose names hold the run id; returns how many."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if run_id in name]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()
