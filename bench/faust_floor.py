"""The Faust floor: the same events through a Faust agent that does nothing with them.

Same consumer settings, uvloop and event loop as the worker, no decision code, no
producing: what Faust's per-event machinery costs on its own. Prints one line,
``floor <events> <seconds> <cpu seconds>``, timed from the first event to the last.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import mode.loop

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python -m bench.faust_floor --help`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated source topics")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    mode.loop.use("uvloop")
    import faust  # after the loop policy is set, as in app.worker.run_worker

    app = faust.App(
        args.group,
        broker=";".join(f"kafka://{s}" for s in args.bootstrap.split(",")),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
    )
    state = {"count": 0, "first": 0.0, "cpu": 0.0}

    def seen() -> None:
        if state["count"] == 0:
            state["first"] = time.perf_counter()
            state["cpu"] = time.process_time()
        state["count"] += 1
        if state["count"] >= args.expect:
            seconds = time.perf_counter() - state["first"]
            cpu = time.process_time() - state["cpu"]
            print(f"floor {state['count']} {seconds:.4f} {cpu:.3f}", flush=True)
            os._exit(0)  # the figure is taken; nothing is left to commit or clean

    for index, name in enumerate(args.topics.split(",")):
        topic = app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

        async def agent(stream: Any) -> None:
            async for _ in stream.events():
                seen()

        app.agent(topic, name=f"floor-{index}", concurrency=1)(agent)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
    return 1


if __name__ == "__main__":
    sys.exit(main())
