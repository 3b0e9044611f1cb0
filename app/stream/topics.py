"""Faust topics of raw bytes: how every Hookstream agent and table reads its records."""

from __future__ import annotations

from typing import Any

__all__ = ["raw_topic"]


def raw_topic(app: Any, name: str, partitions: int) -> Any:
    """A Faust topic with raw bytes keys and values: the records as Kafka holds them.

    The contract's JSON is parsed by Hookstream (app.contract), not by Faust's codecs,
    so an invalid record becomes a dead letter instead of a codec error.
    """
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
