"""Conventions every layer's Prometheus metrics share."""

from __future__ import annotations

__all__ = ["LATENCY_BUCKETS"]

# Seconds from 1 ms to 1 min: event-to-job latency is expected in the tens of ms.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
