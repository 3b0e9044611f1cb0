"""`hookstream publish` for run records: records from flags, and events told from run records.

A record whose `event_type` is RUN_METRIC or RUN_STATE is a run record (contract "Run
events"): it is validated with the contract's run models and produced by the producer
library to `run-events`, keyed by run path; anything else is an event. Flags build one
run record the way `AsyncProducer.log_metrics` / `set_run_state` do
(app.producer.events.build_run_record).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from app import serialization
from app.contract.runs import RUN_RECORD_TYPES, RunState
from app.producer.events import Place, build_run_record

__all__ = [
    "RUN_STATES",
    "UsageError",
    "is_run_record",
    "key_value",
    "metric_flag",
    "run_record_from_flags",
]

RUN_STATES = tuple(state.value for state in RunState)


class UsageError(ValueError):
    """The flags do not describe a record (exit 2, as argparse's own errors)."""


def metric_flag(text: str) -> tuple[str, float]:
    """`--metric NAME=VALUE`: VALUE a finite JSON number (the name may hold `=`: the last
    one splits)."""
    name, sep, raw = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = serialization.loads(raw)
    except serialization.JSONDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"metric {name!r}: {raw!r} is not a number (metrics are finite numbers)"
        )
    return name, value


def key_value(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` flags as an object: each VALUE read as JSON when it is, else as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, _, raw = item.partition("=")
        try:
            out[key] = serialization.loads(raw)
        except serialization.JSONDecodeError:
            out[key] = raw
    return out


def run_record_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The RUN_METRIC or RUN_STATE record the flags give; UsageError names what is missing."""
    needed = ["entity", "project", "run_id"]
    if args.type == "RUN_METRIC":
        needed += ["step", "metric"]
    else:
        needed.append("state")
    missing = [name for name in needed if getattr(args, name) in (None, [])]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        raise UsageError(f"publish --type {args.type} needs {flags}")
    run: dict[str, Any] = {
        "name": args.run_name,
        "user": args.author,
        "tags": args.tags,
        "config": key_value(args.config) or None,
    }
    fields: dict[str, Any] = (
        {"step": args.step, "metrics": dict(args.metric)}
        if args.type == "RUN_METRIC"
        else {"state": args.state}
    )
    return build_run_record(
        args.type,
        Place(entity=args.entity, project=args.project),
        args.run_id,
        run={k: v for k, v in run.items() if v},
        event_id=args.event_id,
        **fields,
    )


def is_run_record(raw: bytes) -> bool:
    """Whether a message is meant for run-events (a JSON object of a run record's type)."""
    try:
        obj = serialization.loads(raw)
    except serialization.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("event_type") in RUN_RECORD_TYPES
