"""S0f, the Faust floor: the same events through one Faust agent that does nothing.

Faust as it comes: asyncio's default event loop (no uvloop), `faust.App` with its
default settings and the memory store, `faust worker`'s default log level (WARN), one
agent (concurrency 1) on both event topics with Faust's raw key and value serializer,
iterating its stream as the Faust docs do (`async for value in stream`, one
acknowledgement per event). Nothing of Hookstream's worker tuning is copied here.

The only settings given are the ones a run needs: the broker, the app id (its consumer
group), a free web port and a data folder of the run's own, so that runs side by side
do not collide. Prints one line, ``floor <events> <seconds> <cpu seconds>``, timed from
the first event to the last.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _free_port() -> int:
    """A TCP port free on loopback right now (for Faust's web server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _report(count: int, seconds: float, cpu: float) -> None:
    """Write the figure line straight to fd 1: Faust's worker redirects sys.stdout."""
    os.write(1, f"floor {count} {seconds:.4f} {cpu:.3f}\n".encode())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python -m bench.faust_floor --help`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True, help="the Faust app id (its consumer group)")
    parser.add_argument("--topics", required=True, help="comma-separated source topics")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--datadir", type=Path, help="Faust's data folder (default: a temp dir)")
    args = parser.parse_args(argv)
    import faust  # imported here: `--help` needs no Faust

    datadir = args.datadir or Path(tempfile.mkdtemp(prefix=f"{args.group}-"))
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        args.group,
        broker=";".join(f"kafka://{s}" for s in args.bootstrap.split(",")),
        store="memory://",
        web_port=_free_port(),
        datadir=str(datadir),
    )
    state = {"count": 0, "first": 0.0, "cpu": 0.0}
    expect: int = args.expect

    def seen() -> None:
        if state["count"] == 0:
            state["first"] = time.perf_counter()
            state["cpu"] = time.process_time()
        state["count"] += 1
        if state["count"] >= expect:
            seconds = time.perf_counter() - state["first"]
            _report(int(state["count"]), seconds, time.process_time() - state["cpu"])
            os._exit(0)  # the figure is taken; nothing is left to commit or clean

    topic = app.topic(
        *args.topics.split(","),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def floor(stream: Any) -> None:
        """The no-op agent: take every event, do nothing with it."""
        async for _ in stream:
            seen()

    app.agent(topic, name="floor")(floor)
    worker = faust.Worker(app, loglevel="WARN")  # `faust worker`'s default log level
    worker.execute_from_commandline()
    return 1


if __name__ == "__main__":
    sys.exit(main())
