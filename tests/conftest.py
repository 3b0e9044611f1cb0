"""Session-wide fixtures: the real broker, and unique names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.broker import BrokerUnavailable, provide_broker


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker; in CI a missing broker fails, never skips."""
    try:
        with provide_broker() as (bootstrap, origin):
            print(f"\nkafka broker: {bootstrap} ({origin})")
            yield bootstrap
    except BrokerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"no Kafka broker in CI: {exc}")
        pytest.skip(f"no Kafka broker: {exc}")


@pytest.fixture
def uid() -> str:
    """A short unique suffix for topic and group names of one test."""
    return uuid.uuid4().hex[:10]
