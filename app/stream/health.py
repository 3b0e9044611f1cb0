"""HTTP views on the worker's Faust web server: health, readiness, metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Readiness", "define_health_views"]

# The named checks behind /readyz: each True when that part of the worker is ready.
Readiness = Callable[[], Awaitable[dict[str, bool]]]


def define_health_views(app: faust.App, readiness: Readiness, registry: CollectorRegistry) -> None:
    """Register /healthz, /readyz and /metrics on the Faust app's web server."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        """Alive: the process serves HTTP."""
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Ready: partitions assigned, automations loaded, broker reachable."""
        checks = await readiness()
        ready = all(checks.values())
        return web.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus exposition of this process's registry."""
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
