"""Find or start a real Kafka broker for the test session."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

__all__ = ["BrokerUnavailable", "broker_answers", "provide_broker"]

ROOT = Path(__file__).resolve().parents[1]


class BrokerUnavailable(RuntimeError):
    """No broker could be found or started."""


def _local_kafka() -> ModuleType:
    path = ROOT / "deploy" / "kafka" / "local_kafka.py"
    spec = importlib.util.spec_from_file_location("local_kafka", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _metadata(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def broker_answers(bootstrap: str) -> bool:
    """Whether a broker at `bootstrap` answers a Metadata request."""
    return asyncio.run(_metadata(bootstrap))


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@contextmanager
def provide_broker() -> Iterator[tuple[str, str]]:
    """Yield (bootstrap servers, where it came from): env, testcontainers or local jars."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not broker_answers(configured):
            raise BrokerUnavailable(f"KAFKA_BOOTSTRAP_SERVERS={configured} does not answer")
        yield configured, "KAFKA_BOOTSTRAP_SERVERS"
        return
    if _docker_engine():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server(), "testcontainers"
        return
    local = _local_kafka()
    if not local.jars_resolved():
        # Starting would resolve them from Maven Central: that is `make test-tools`' job.
        raise BrokerUnavailable("the Kafka jars are not resolved: run `make test-tools`")
    port = int(os.environ.get("HOOKSTREAM_TEST_KAFKA_PORT", "19092"))
    try:
        mine = local.start(port, port + 1, "512m", 120.0)
    except SystemExit as exc:
        raise BrokerUnavailable(f"local Kafka did not start: {exc}") from exc
    try:
        yield f"127.0.0.1:{port}", "local jars"
    finally:
        if mine:
            local.stop(port, quiet=True)
