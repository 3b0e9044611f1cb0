"""Run the benchmarks (`make bench`): print the table and the targets, write docs/benchmarks.md.

Contenders in the same run: S0 raw aiokafka, S0f a no-op Faust agent on Faust's defaults
(the baseline of S1), S1/S2 through `hookstream worker`. Every target (issue 12, point 7)
is printed with PASS or FAIL against baselines of the same run; nothing here exits
non-zero on a FAIL (benchmarks are not tests).

Needs a broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092). `--smoke` runs every
scenario at tiny sizes, which `make test` uses to check that the harness works.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scenarios, workload
from bench.machine import cpu_pressure, describe, load_average
from bench.matcher import crowded_eps, matcher_eps, pipeline_eps
from bench.profile import summarize
from bench.report import Results, ScaleRow, to_markdown, to_text, write_markdown
from bench.runs import RunsResult, s5, s5_markdown, s5_text

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parents[1]

FULL: dict[str, Any] = {
    "events": 200_000,
    "s1_automations": 100,
    "sizes": "10,1000,10000",
    "rates": "1000,5000",
    # 60 s at every rate: the 5,000 events/s target asks for 60 s without growing lag.
    "latency_seconds": 60.0,
    "warmup_seconds": 3.0,
    "offline_events": 50_000,
    "crowded": 1000,
    "repeat": 2,
    # S5 (issue 14): run records, runs, run automations.
    "s5_records": 500_000,
    "s5_runs": 2_000,
    "s5_automations": 100,
}
SMOKE: dict[str, Any] = {
    "events": 3_000,
    "s1_automations": 20,
    "sizes": "10,50,200",
    "rates": "200",
    "latency_seconds": 3.0,
    "warmup_seconds": 1.0,
    "offline_events": 3_000,
    "crowded": 50,
    "repeat": 1,
    "s5_records": 2_000,
    "s5_runs": 40,
    "s5_automations": 20,
}


def _parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench.run`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the harness")
    parser.add_argument("--events", type=int, help="pre-filled events (S0, S1, S2)")
    parser.add_argument("--s1-automations", type=int)
    parser.add_argument("--sizes", help="S2 automation counts, comma-separated, smallest first")
    parser.add_argument("--rates", help="S3 steady rates in events/s, comma-separated")
    parser.add_argument("--latency-seconds", type=float, help="S3 measured seconds per rate")
    parser.add_argument("--warmup-seconds", type=float, help="S3 warm-up left out per rate")
    parser.add_argument("--offline-events", type=int, help="events for the no-Kafka figures")
    parser.add_argument("--crowded", type=int, help="automations in one scope (matcher only)")
    parser.add_argument("--repeat", type=int, help="rounds of S0-S2; the best round is reported")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile an extra S1 run with py-spy (default: on unless --smoke)",
    )
    parser.add_argument("--out", type=Path, help="markdown to write (default: docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--workdir", type=Path, help="logs and worker data (default: a temp dir)")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topics")
    # S5 (issue 14): run metrics; `--only S5` runs it alone (2 cores: the full run is long).
    parser.add_argument("--only", choices=["S5"], help="run one scenario alone")
    parser.add_argument("--s5-records", type=int, help="S5 RUN_METRIC records")
    parser.add_argument("--s5-runs", type=int, help="S5 runs")
    parser.add_argument("--s5-automations", type=int, help="S5 run automations")
    return parser


def _pick(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes of this run: the command line over the full (or smoke) defaults."""
    base = FULL if not args.smoke else SMOKE
    return {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}


def run_s5(args: argparse.Namespace) -> RunsResult:
    """S5 alone: run metrics through the run agent, against S0f over the same records."""
    pick = _pick(args)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hookstream-bench-s5-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return s5(
        bootstrap,
        workdir,
        records=pick["s5_records"],
        runs=pick["s5_runs"],
        automations=pick["s5_automations"],
        say=_say,
    )


def _ints(text: str) -> list[int]:
    """The integers of a comma-separated list."""
    return [int(part) for part in text.split(",") if part.strip()]


def run(args: argparse.Namespace) -> Results:
    """Every scenario, in order: S0, S0f, S1, S2, S3, matcher-only, profile."""
    pick = _pick(args)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hookstream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    profile = args.profile if args.profile is not None else not args.smoke
    if profile and shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None:
        print("py-spy is not installed in this environment: no profile", file=sys.stderr)
        profile = False
    load_before = load_average()
    pressure_before = cpu_pressure()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    _say(f"preparing {pick['events']:,} events on {bootstrap} (work dir {workdir})")
    bench = scenarios.prepare(bootstrap, workdir, pick["events"])
    try:
        _say(f"pre-filled in {bench.prefill_seconds:.1f} s")
        s1_automations = workload.automations(pick["s1_automations"])
        sizes = {count: workload.automations(count) for count in _ints(pick["sizes"])}
        rates = _ints(pick["rates"])
        # Rounds, not back-to-back repeats: a burst of load from elsewhere on the machine
        # then hurts one run of several scenarios rather than every run of one.
        s0s, floors0, s1s, quiets = [], [], [], []
        s2s: dict[int, list[scenarios.WorkerRun]] = {count: [] for count in sizes}
        for n in range(pick["repeat"]):
            _say(f"round {n + 1} of {pick['repeat']}: S0 raw pass-through")
            s0s.append(scenarios.passthrough(bench, f"r{n}"))
            _say(f"  {s0s[-1].eps:,.0f} events/s; S0f Faust no-op agent")
            floors0.append(scenarios.faust_floor(bench, f"r{n}"))
            _say(f"  {floors0[-1].eps:,.0f} events/s; S1 ({len(s1_automations)} automations)")
            s1s.append(scenarios.worker_run(bench, s1_automations, f"s1r{n}"))
            _say(f"  {s1s[-1].throughput.eps:,.0f} events/s; S1 without execution history")
            quiets.append(
                scenarios.worker_run(
                    bench, s1_automations, f"s1nhr{n}", overrides={"history_enabled": False}
                )
            )
            _say(f"  {quiets[-1].throughput.eps:,.0f} events/s")
            for count, automations in sizes.items():
                s2s[count].append(scenarios.worker_run(bench, automations, f"s2x{count}r{n}"))
                _say(f"  S2 {count:,} automations: {s2s[count][-1].throughput.eps:,.0f} events/s")
        s0 = max(s0s, key=lambda t: t.eps)
        floor = max(floors0, key=lambda t: t.eps)
        s1 = _best(s1s)
        s1_quiet = _best(quiets)
        rounds = {
            "S0": [t.eps for t in s0s],
            "S0f": [t.eps for t in floors0],
            "S1": [r.throughput.eps for r in s1s],
            "S1 without history": [r.throughput.eps for r in quiets],
            **{f"S2 {c:,}": [r.throughput.eps for r in runs] for c, runs in s2s.items()},
        }
        offline = bench.events[: pick["offline_events"]]
        s2 = []
        for count, automations in sizes.items():
            matched, candidates = matcher_eps(offline, automations)
            whole = pipeline_eps(offline, automations, repeat=2)
            _say(f"S2 {count:,} automations without Kafka: matcher only {matched:,.0f} events/s")
            s2.append(ScaleRow(count, _best(s2s[count]), matched, candidates, whole))
        crowded = (pick["crowded"], *crowded_eps(offline, pick["crowded"]))
        _say("S3 steady rates: " + ", ".join(f"{r}/s" for r in rates))
        s3, s3_rss = scenarios.latency(
            bench,
            s1_automations,
            rates,
            pick["latency_seconds"],
            pick["warmup_seconds"],
        )
        floors = []
        for rate in rates:
            _say(f"S3 Faust no-op agent at {rate}/s")
            floors.append(scenarios.floor_at_rate(bench, rate, pick["latency_seconds"]))
        summary = profile_run = None
        if profile:
            _say("profile: S1 again under py-spy")
            profile_run = scenarios.worker_run(
                bench,
                s1_automations,
                "prof",
                profile=workdir / "s1-profile.txt",
            )
            if profile_run.profile is not None:
                summary = summarize(profile_run.profile)
        # S5 (issue 14): run metrics, against S0f over its own run records.
        runs_result = run_s5(args)
    finally:
        if not args.keep_topics:
            scenarios.cleanup(bootstrap, bench.run_id)
    command = "make bench" if not args.smoke else "python -m bench.run --smoke"
    return Results(
        machine=describe(),
        bootstrap=bootstrap,
        started_at=started_at,
        command=command,
        smoke=args.smoke,
        events=len(bench.events),
        load_before=load_before,
        load_after=load_average(),
        pressure=(pressure_before, cpu_pressure()),
        s0=s0,
        floor=floor,
        s1=s1,
        s1_no_history=s1_quiet,
        s2=s2,
        crowded=crowded,
        s3=s3,
        s3_rss_kib=s3_rss,
        s3_floor=floors,
        rounds=rounds,
        profile=summary,
        profile_run=profile_run,
        s5=runs_result,
    )


def _best(runs: list[scenarios.WorkerRun]) -> scenarios.WorkerRun:
    """The round with the highest throughput."""
    return max(runs, key=lambda run: run.throughput.eps)


def _say(text: str) -> None:
    """A progress line on stderr (stdout carries the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _jsonable(value: Any) -> Any:
    """Dataclasses (with their computed figures), lists and paths as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("eps", "cpu_us_per_event"):
            if hasattr(value, name):
                out[name] = getattr(value, name)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    args = _parser().parse_args(argv)
    if args.only == "S5":
        alone = run_s5(args)
        print("S5 run metrics (issue 14):\n" + s5_text(alone), flush=True)
        out_s5 = (
            args.out
            if args.out is not None
            else (None if args.smoke else ROOT / "docs" / "benchmarks-s5.md")
        )
        if out_s5 is not None:
            # The hand-written analysis below the marker survives a new run.
            write_markdown(out_s5, "\n".join(["# Benchmark S5", "", *s5_markdown(alone)]))
            print(f"wrote {out_s5}", file=sys.stderr)
        if args.json is not None:
            args.json.write_text(json.dumps(_jsonable(alone), indent=2))
        return 0
    results = run(args)
    load = results.load_before[0]
    if load > 1.0:
        results.notes.append(
            f"The machine was busy when the run started (1-minute load {load:.2f}): "
            "figures are lower than on an idle machine."
        )
    print(to_text(results), flush=True)
    default = None if args.smoke else ROOT / "docs" / "benchmarks.md"
    out = args.out if args.out is not None else default
    if out is not None:
        write_markdown(out, to_markdown(results))
        print(f"wrote {out}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(_jsonable(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
