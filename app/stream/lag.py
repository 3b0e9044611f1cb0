"""Consumer lag per assigned event-topic partition, as a gauge refreshed by a timer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.stream.worker import Hookstream

__all__ = ["define_lag_timer", "update_lag"]

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0


async def update_lag(hs: Hookstream) -> None:
    """Set lag = end offset - committed offset (as kafka-consumer-groups reports it)."""
    lags = await hs.lag()
    gauge = hs.metrics.consumer_lag
    current = {(tp.topic, str(tp.partition)) for tp in lags}
    # Revoked partitions lose their series, or a stale value would keep lag alerts firing.
    for labels in hs.lag_labels - current:
        gauge.remove(*labels)
    hs.lag_labels = current
    for tp, lag in lags.items():
        gauge.labels(tp.topic, str(tp.partition)).set(lag)


def define_lag_timer(hs: Hookstream) -> None:
    """Refresh the lag gauge every few seconds."""

    async def refresh_consumer_lag() -> None:
        try:
            await update_lag(hs)
        except Exception as exc:  # lag is best-effort telemetry; it must not stop the worker
            log.warning("consumer lag update failed: %r", exc)

    hs.app.timer(LAG_INTERVAL_SECONDS)(refresh_consumer_lag)
