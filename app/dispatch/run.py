"""`hookstream dispatch webhook|notification`: run one dispatcher until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal

from app.core.topics import DispatchKind
from app.dispatch.service import Dispatcher
from app.settings import Settings

__all__ = ["run_dispatcher"]


async def _serve(settings: Settings, kind: DispatchKind) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    dispatcher = Dispatcher(settings, kind)
    await dispatcher.start()
    print(
        f"Hookstream {kind} dispatcher: group {dispatcher.group_id}, "
        f"web at http://{settings.web_host}:{settings.web_port}/",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await dispatcher.stop()


def run_dispatcher(settings: Settings, kind: DispatchKind) -> int:
    """Run in the foreground; returns the exit code."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings, kind))
    else:
        uvloop.run(_serve(settings, kind))
    return 0
