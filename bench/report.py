"""The benchmark's results: one table for the terminal, docs/benchmarks.md for the repo."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.machine import Machine
from bench.profile import Summary
from bench.scenarios import FloorAtRate, LatencyResult, Throughput, WorkerRun

__all__ = ["MARKER", "Results", "ScaleRow", "rows", "to_markdown", "to_text", "write_markdown"]

# Everything below this line in docs/benchmarks.md is hand-written and kept on rewrite.
MARKER = "<!-- hand-written analysis below: `make bench` keeps it -->"

MB = 1024  # KiB per MiB


@dataclass(slots=True)
class ScaleRow:
    """S2 at one automation count: end to end, matcher only, whole pipeline only."""

    automations: int
    run: WorkerRun
    matcher_eps: float
    candidates: float
    pipeline_eps: float


@dataclass(slots=True)
class Results:
    """Every figure of one benchmark run."""

    machine: Machine
    bootstrap: str
    started_at: str
    command: str
    smoke: bool
    events: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    pressure: tuple[float | None, float | None]
    s0: Throughput
    floor: Throughput
    s1: WorkerRun
    s1_no_history: WorkerRun
    s2: list[ScaleRow]
    crowded: tuple[int, float, float]  # automations in one scope, guarded eps, scanned eps
    s3: list[LatencyResult]
    s3_rss_kib: int
    s3_floor: list[FloorAtRate] = field(default_factory=list)
    rounds: dict[str, list[float]] = field(default_factory=dict)
    profile: Summary | None = None
    profile_run: WorkerRun | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def s4(self) -> WorkerRun:
        """The worker holding the most automations (the largest S2 run)."""
        return max(self.s2, key=lambda row: row.automations).run


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _holds(ok: bool) -> str:
    return "yes" if ok else "NO"


def rows(r: Results) -> list[tuple[str, str, str, str]]:
    """(scenario, figure, target, holds) for every line of the table."""
    s0 = r.s0.eps
    out: list[tuple[str, str, str, str]] = [
        ("S0 raw aiokafka pass-through", f"{_n(s0)} events/s", "", ""),
        (
            "S0f Faust no-op agent (for comparison)",
            f"{_n(r.floor.eps)} events/s = {r.floor.eps / s0:.2f} of S0",
            "",
            "",
        ),
    ]
    s1 = r.s1.throughput.eps
    out.append(
        (
            f"S1 catch-up, {r.s1.automations:,} automations",
            f"{_n(s1)} events/s = {s1 / s0:.2f} of S0",
            ">= 0.5 of S0",
            _holds(s1 >= 0.5 * s0),
        )
    )
    quiet = r.s1_no_history.throughput.eps
    out.append(
        (
            "S1 without execution history",
            f"{_n(quiet)} events/s = {quiet / s0:.2f} of S0",
            "",
            "",
        )
    )
    base = r.s2[0]
    for row in r.s2:
        ratio = row.run.throughput.eps / base.run.throughput.eps
        last = row is r.s2[-1]
        out.append(
            (
                f"S2 {row.automations:,} automations, end to end",
                f"{_n(row.run.throughput.eps)} events/s = {ratio:.2f} of {base.automations}",
                f">= 0.8 of {base.automations}" if last else "",
                _holds(ratio >= 0.8) if last else "",
            )
        )
    for row in r.s2:
        target_row = row.automations == 1000 or (r.smoke and row is r.s2[1])
        out.append(
            (
                f"S2 {row.automations:,} automations, matcher only",
                f"{_n(row.matcher_eps)} events/s ({row.candidates:.1f} in scope/event)",
                ">= 100,000" if target_row else "",
                _holds(row.matcher_eps >= 100_000) if target_row else "",
            )
        )
    count, guarded, scanned = r.crowded
    out.append(
        (
            f"S2 {count:,} automations in one scope, matcher only",
            f"{_n(guarded)} events/s (scanning all: {_n(scanned)})",
            "",
            "",
        )
    )
    for lat in r.s3:
        target_row = lat is r.s3[0]
        out.append(
            (
                f"S3 steady {lat.rate:,} events/s",
                f"p50 {lat.p('create', 0.5):.1f} ms, p99 {lat.p('create', 0.99):.1f} ms"
                f" to the job's CreateTime; received p50 {lat.p('receive', 0.5):.1f},"
                f" p99 {lat.p('receive', 0.99):.1f} ms ({lat.jobs:,} jobs)",
                "p99 <= 50 ms" if target_row else "",
                _holds(lat.p("create", 0.99) <= 50.0) if target_row else "",
            )
        )
    s4 = r.s4
    out.append(
        (
            f"S4 worker RSS, {s4.automations:,} automations",
            f"ready {s4.rss_ready_kib / MB:.0f} MB, peak {s4.rss_peak_kib / MB:.0f} MB",
            "<= 300 MB",
            _holds(s4.rss_peak_kib / MB <= 300),
        )
    )
    return out


def to_text(r: Results) -> str:
    """The table as fixed-width text."""
    table = rows(r)
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    head = ("scenario", "figure", "target", "holds")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = [
        f"Hookstream benchmark: {r.events:,} events, {r.machine.nproc} CPUs "
        f"({r.machine.cpu_model}), Kafka {r.machine.kafka}"
        + (" [SMOKE: small sizes, figures not meaningful]" if r.smoke else ""),
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(lines)


def _md_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in body]
    return out


def _run_line(name: str, t: Throughput, run: WorkerRun | None = None) -> tuple[str, ...]:
    jobs = (
        f"{run.expected_jobs:,} expected, {run.missing_jobs} missing, "
        f"{run.unexpected_jobs} unexpected, {run.duplicate_jobs} duplicated"
        if run is not None
        else ""
    )
    busy = f"{run.cpu_seconds / run.wall_seconds:.0%}" if run and run.wall_seconds else ""
    return (name, _n(t.eps), f"{t.seconds:.2f}", f"{t.cpu_us_per_event:.0f}", busy, jobs)


def to_markdown(r: Results) -> str:
    """The generated part of docs/benchmarks.md."""
    m = r.machine
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{r.command}` on {r.started_at}"
        + (" (**smoke run**: tiny sizes, not meaningful figures)." if r.smoke else "."),
        "Regenerate with `make bench` (about 15 minutes); `python -m bench.run --help` lists",
        "the sizes. The harness is `bench/`; the method of each scenario is below the table.",
        "",
        "## Machine",
        "",
        *_md_table(
            ("", ""),
            [
                ("CPUs (nproc)", str(m.nproc)),
                ("CPU model", m.cpu_model),
                ("memory", f"{m.memory_gib:.1f} GiB"),
                ("kernel", m.kernel),
                ("Python", m.python),
                ("Kafka", f"{m.kafka}: one KRaft broker on this machine, at {r.bootstrap}"),
                ("packages", m.packages),
                (
                    "load average before / after",
                    " / ".join(
                        ", ".join(f"{x:.2f}" for x in load)
                        for load in (r.load_before, r.load_after)
                    ),
                ),
                (
                    "CPU pressure before / after (PSI some, 5-minute average)",
                    " / ".join("n/a" if p is None else f"{p:.1f}%" for p in r.pressure),
                ),
            ],
        ),
        "",
        "The broker, the worker under test and the harness share these CPUs.",
        *(f"{note}" for note in r.notes),
        "",
        "## Results",
        "",
        *_md_table(("scenario", "figure", "target", "holds"), rows(r)),
        "",
        "Runs through a real `hookstream worker` (every job checked against the jobs the",
        "same Pipeline computes offline):",
        "",
        *_md_table(
            ("run", "events/s", "span s", "CPU us/event", "worker CPU", "jobs"),
            [
                _run_line("S0 raw pass-through", r.s0),
                _run_line("S0f Faust no-op agent", r.floor),
                _run_line(f"S1 {r.s1.automations:,} automations", r.s1.throughput, r.s1),
                _run_line(
                    "S1 without execution history",
                    r.s1_no_history.throughput,
                    r.s1_no_history,
                ),
                *(
                    _run_line(f"S2 {row.automations:,} automations", row.run.throughput, row.run)
                    for row in r.s2
                ),
                *(
                    [
                        _run_line(
                            "S1 under py-spy (profile run)",
                            r.profile_run.throughput,
                            r.profile_run,
                        )
                    ]
                    if r.profile_run is not None
                    else []
                ),
            ],
        ),
        "",
        *(
            [
                f"Each throughput figure is the best of {len(next(iter(r.rounds.values())))}"
                " rounds (the machine is shared); every round, in events/s:",
                "",
                *_md_table(
                    ("scenario", "rounds"),
                    [(name, ", ".join(_n(v) for v in values)) for name, values in r.rounds.items()],
                ),
                "",
            ]
            if r.rounds
            else []
        ),
        "S2 without Kafka, on the first events of the same stream (best of repeats):",
        "",
        *_md_table(
            ("automations", "matcher only, events/s", "in scope per event", "Pipeline.process"),
            [
                (
                    f"{row.automations:,}",
                    _n(row.matcher_eps),
                    f"{row.candidates:.2f}",
                    f"{_n(row.pipeline_eps)} events/s",
                )
                for row in r.s2
            ],
        ),
        "",
        "S3 latency, milliseconds from the event's `occurred_at` to its job:",
        "",
        *_md_table(
            (
                "rate",
                "jobs",
                "received p50",
                "received p99",
                "CreateTime p50",
                "CreateTime p99",
            ),
            [
                (
                    f"{lat.rate:,}/s for {lat.seconds:.0f} s",
                    f"{lat.jobs:,}",
                    f"{lat.p('receive', 0.5):.1f}",
                    f"{lat.p('receive', 0.99):.1f}",
                    f"{lat.p('create', 0.5):.1f}",
                    f"{lat.p('create', 0.99):.1f}",
                )
                for lat in r.s3
            ],
        ),
        "",
        *(
            [
                "The Faust no-op agent (S0f) under the same steady loads: what a Faust agent",
                "alone would cost at each rate (the engine reads the events with aiokafka):",
                "",
                *_md_table(
                    ("rate", "CPU us/event", "share of one CPU", "done after the load ended"),
                    [
                        (
                            f"{f.rate:,}/s",
                            f"{f.cpu_us_per_event:.0f}",
                            f"{f.rate * f.cpu_us_per_event / 1e6:.0%}",
                            f"{f.behind_seconds:.1f} s",
                        )
                        for f in r.s3_floor
                    ],
                ),
                "",
            ]
            if r.s3_floor
            else []
        ),
        "S4 memory of the worker (VmRSS, VmHWM from /proc):",
        "",
        *_md_table(
            ("worker", "ready", "after the run", "peak"),
            [
                (
                    f"{row.automations:,} automations",
                    f"{row.run.rss_ready_kib / MB:.0f} MB",
                    f"{row.run.rss_end_kib / MB:.0f} MB",
                    f"{row.run.rss_peak_kib / MB:.0f} MB",
                )
                for row in r.s2
            ],
        ),
        "",
    ]
    if r.profile is not None:
        lines += [
            "## Where the time goes (py-spy, S1)",
            "",
            f"{r.profile.samples:,} samples of the worker thread holding the GIL",
            "(`py-spy record --gil --nonblocking`, attached once the worker was ready; each",
            "sample is charged to its innermost frame that is not generic asyncio/mode code):",
            "",
            *_md_table(
                ("share", "where"),
                [(f"{share:.1f}%", name) for name, share in r.profile.categories],
            ),
            "",
            "Top functions by own time:",
            "",
            *_md_table(
                ("share", "function"),
                [(f"{share:.1f}%", f"`{name}`") for name, share in r.profile.functions],
            ),
            "",
        ]
    lines += _method()
    return "\n".join(lines)


def _method() -> list[str]:
    return [
        "## Method",
        "",
        "- **Events**: seeded, about 440 bytes of JSON each; 45% `CREATE_ARTIFACT`, 35%",
        "  `ADD_ARTIFACT_ALIAS`, 20% `LINK_ARTIFACT`, over 8 projects and 2 registries of one",
        "  organisation; keyed by collection path; 4 partitions per event topic. Every",
        "  partition's first and last event is one that a core automation matches.",
        "- **Automations**: ten *core* automations (exact scopes, alias regexes, metadata and",
        "  tag filters) give the jobs, about 8% of events; the rest are *background*: 90% on",
        "  other teams' scopes, 10% on the events' scopes with filters that never match.",
        "  The job count is the same at every size, so S2 measures matching, not output.",
        "- **S0**: `bench/passthrough.py`, a separate process: aiokafka consumer group on both",
        "  event topics, every value produced unchanged (linger 5 ms, lz4, acks=all), flush",
        "  before each commit. **S0f**: `bench/faust_floor.py`, a Faust app with one no-op",
        "  agent per topic, timed from its first to its last event: what consuming through",
        "  a Faust agent costs before any work (the engine does not; docs/decisions.md).",
        "- **S1, S2**: a real `hookstream worker` child process with its own consumer group",
        "  and action topics over the same pre-filled topics; throughput is events divided by",
        "  the span from the first job's `created_at` (when the worker decided its event) to",
        "  the last job's Kafka timestamp (CreateTime, set by the worker's producer when it",
        "  queues the job). The first and last events of every partition produce a job, so",
        "  that span is the worker's consumption. S0 uses the span of its output records'",
        "  timestamps. Every job id is checked against the offline `Pipeline`.",
        "- **Matcher only**: `AutomationIndex.match` on parsed events (no parsing, no Kafka);",
        "  *Pipeline.process* is the whole decision code from raw bytes.",
        "- **S3**: `bench/loadgen.py` produces at a steady rate (5 ms ticks, linger 0),",
        "  stamping `occurred_at` just before each send; the harness consumes the action",
        "  topics. *CreateTime* is the job record's Kafka timestamp (the topics keep",
        "  CreateTime, LogAppendTime is not set: the time the worker's producer queued the",
        "  job) minus `occurred_at`; the target is judged on it. *Received* is the harness's",
        "  receive time minus `occurred_at`: it adds the producer's linger, the broker and",
        "  the harness's own fetch. The first seconds of each rate are a warm-up, left out.",
        "- **S4**: VmRSS of the worker once ready and after its S2 run, VmHWM as the peak.",
        "",
    ]


def write_markdown(path: Path, generated: str) -> None:
    """Write the generated part, keeping any hand-written part below MARKER."""
    kept = ""
    if path.exists():
        text = path.read_text()
        if MARKER in text:
            kept = text[text.index(MARKER) :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generated.rstrip() + "\n\n" + (kept or MARKER + "\n"))
