"""HTTP views on the worker's Faust web server: health, readiness, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from app.stream.worker import Hookstream

__all__ = ["define_views"]


def define_views(hs: Hookstream) -> None:
    """Register /healthz, /readyz and /metrics."""
    app = hs.app

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        """Alive: the process serves HTTP."""
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Ready: partitions assigned, automations loaded, broker reachable."""
        checks = await hs.readiness()
        ready = all(checks.values())
        return web.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus exposition of this process's registry."""
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.bytes(
            generate_latest(hs.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
