"""Fault-suite helpers: worker processes with extra environment, a background topic
reader, a paced producer, the workload and its offline expectation, a dedicated broker,
and what the webhook receiver got.

Everything here is bounded: every wait has a deadline, every thread and child
process is stopped by the fixture or the ``finally`` that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2

from app import serialization
from app.contract.automations import Automation, parse_automation
from app.core.evaluate import run_evaluate
from app.core.limits import KAFKA_DEFAULT_MAX_MESSAGE_BYTES
from app.core.stored import stamp
from app.kafka.automations import apply_automations
from app.settings import Settings
from tests.broker import _local_kafka
from tests.integration.dispatch_support import Hit, Receiver
from tests.integration.harness import WorkerProcess
from tests.support import Record

__all__ = [
    "ENTITY",
    "FAST_GROUP_ENV",
    "SESSION_TIMEOUT",
    "ExpectedJob",
    "FaultWorker",
    "JobFigures",
    "PacedProducer",
    "apply",
    "broker_config",
    "dedicated_broker",
    "event_key",
    "event_topic",
    "expected_jobs",
    "fault_automations",
    "first_2xx",
    "has_stock_size_limits",
    "hits_by_id",
    "is_2xx",
    "job_figures",
    "job_id_of",
    "job_topics",
    "partition_of",
    "posts_after_success",
    "records_of",
    "require_broker_tools",
    "start_local_broker",
    "succeeded",
    "topic_config",
    "workload",
]


def _group_env() -> dict[str, str]:
    """Fast failure detection for SIGKILLed members (Faust reads these variables).

    Faust's defaults (60 s session, 3 s heartbeat) make a crash wait a minute before
    the group notices; operators set the same variables (docs/reliability.md).
    HOOKSTREAM_FAULTS_SESSION_TIMEOUT=faust-default measures with Faust's own.
    """
    timeout = os.environ.get("HOOKSTREAM_FAULTS_SESSION_TIMEOUT", "10")
    if timeout == "faust-default":
        return {}
    return {"BROKER_SESSION_TIMEOUT": timeout, "BROKER_HEARTBEAT_INTERVAL": "1"}


FAST_GROUP_ENV: dict[str, str] = _group_env()
SESSION_TIMEOUT = FAST_GROUP_ENV.get("BROKER_SESSION_TIMEOUT", "60 (Faust default)")


class FaultWorker(WorkerProcess):
    """A `hookstream worker` child process with extra environment variables."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        web_port: int | None = None,
    ) -> None:
        super().__init__(settings, log_path, web_port=web_port)
        self.extra_env = dict(env or {})

    def start(self, timeout: float = 120.0) -> Self:
        """Start and wait until /readyz answers 200 (a longer wait than the parent's)."""
        return super().start(timeout)

    def environment(self) -> dict[str, str]:
        """The settings' variables plus this worker's extra ones."""
        return {**super().environment(), **self.extra_env}

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def assignment(self, topics: Iterable[str]) -> set[int]:
        """Event-topic partitions this worker owns, from its lag gauge series on /metrics."""
        wanted = set(topics)
        owned: set[int] = set()
        for line in self.get("/metrics").decode().splitlines():
            if not line.startswith("hookstream_consumer_lag_messages{"):
                continue
            labels = dict(
                part.split("=", 1)
                for part in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            if labels.get("topic", "").strip('"') in wanted:
                owned.add(int(labels["partition"].strip('"')))
        return owned

    def terminate_quietly(self) -> None:
        """SIGKILL if running; never raises (for finally blocks)."""
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class PacedProducer:
    """Produces records in a background thread, `batch` at a time every `pause` seconds.

    Idempotent and retrying, so a broker outage neither loses nor doubles an event.
    """

    def __init__(
        self,
        bootstrap: str,
        records: Sequence[tuple[str, bytes | None, bytes | None]],
        *,
        batch: int = 500,
        pause: float = 0.1,
        max_request_size: int = 1024 * 1024,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.bootstrap = bootstrap
        self.request_timeout_ms = request_timeout_ms
        self.items = list(records)
        self.batch = batch
        self.pause = pause
        self.max_request_size = max_request_size
        self.sent = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="paced-producer", daemon=True)

    def start(self) -> PacedProducer:
        """Begin producing."""
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        """Wait until every record is acknowledged; raises on error or timeout."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"producer sent {self.sent}/{len(self.items)} in {timeout}s")
        if self.error is not None:
            raise RuntimeError(f"producer failed: {self.error!r}")

    def close(self) -> None:
        """Stop early (bounded)."""
        self._stop.set()
        self._thread.join(60)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=self.max_request_size,
            # A batch waits this long for a broker that is away (a restart).
            request_timeout_ms=self.request_timeout_ms,
        )
        await producer.start()
        try:
            for start in range(0, len(self.items), self.batch):
                if self._stop.is_set():
                    return
                chunk = self.items[start : start + self.batch]
                futures = [
                    await producer.send(topic, key=key, value=value) for topic, key, value in chunk
                ]
                await asyncio.gather(*futures)
                self.sent = start + len(chunk)
                await asyncio.sleep(self.pause)
        finally:
            await producer.stop()


# --- workload ---------------------------------------------------------------------

ENTITY = "acme"
REGISTRY_PROJECT = "wandb-registry-model"
REGISTRY_COLLECTIONS = tuple(f"classifier-{i}" for i in range(16))
PROJECT_COLLECTIONS = tuple(f"dataset-{i}" for i in range(8))
ALIASES = ("production", "staging", "candidate", "prod-eu")
TAGS = (("baseline",), ("candidate",), (), ("nightly", "gpu"))


def fault_automations(uid: str) -> list[Automation]:
    """Several automations over every action type, stamped as the store would (revision 1)."""
    registry = {"type": "registry", "entity": ENTITY, "registry": "model"}
    project = {"type": "project", "entity": ENTITY, "project": "vision"}
    specs: list[dict[str, Any]] = [
        {
            "id": "deploy-prod",
            "name": "deploy on prod aliases",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "filter": {"alias": {"$regex": "^prod"}},
            "action": {
                "type": "webhook",
                "url": "https://ci.example.com/hooks/deploy",
                "payload": '{"model": "${artifact_version_string}", "alias": "${alias}", '
                '"previous": "${previous_version}"}',
                "secret": "DEPLOY",
            },
        },
        {
            "id": "notify-staging",
            "name": "tell the team about staging",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "filter": {"$or": [{"alias": "staging"}, {"tags": {"$in": ["nightly"]}}]},
            "action": {
                "type": "notification",
                "channel": "C-ML",
                "title": "${artifact_version_string} is ${alias}",
                "message": "by ${event_author}",
            },
        },
        {
            "id": "eval-links",
            "name": "evaluate linked versions",
            "event": "LINK_ARTIFACT",
            "scope": registry,
            "action": {
                "type": "queue_job",
                "queue": "eval",
                "job": "acme/evals/run:latest",
                "config": {"model": "${artifact_version_string}"},
            },
        },
        {
            "id": "mirror-baseline-links",
            "name": "mirror baseline links",
            "event": "LINK_ARTIFACT",
            "scope": registry,
            "filter": {"tags": "baseline"},
            "action": {
                "type": "kafka",
                "topic": f"fault-mirror-{uid}",
                "payload": '{"model": "${artifact_version_string}"}',
            },
        },
        {
            "id": "train-dataset-0",
            "name": "train on dataset-0",
            "event": "CREATE_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": ENTITY,
                "project": "vision",
                "collection": "dataset-0",
            },
            "action": {"type": "queue_job", "queue": "gpu", "job": "train", "config": {}},
        },
        {
            "id": "project-alias",
            "name": "project alias with good accuracy",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": project,
            "filter": {"metadata.accuracy": {"$gte": 0.5}},
            "action": {
                "type": "webhook",
                "url": "https://hooks.example.com/p",
                "payload": '{"v": "${artifact_version}", "prev": "${previous_version}"}',
            },
        },
        {
            "id": "count-only",
            "name": "no-op matcher",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "action": {"type": "no_op"},
        },
        {
            "id": "switched-off",
            "name": "disabled",
            "enabled": False,
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "action": {"type": "notification", "channel": "C", "title": "x", "message": "y"},
        },
    ]
    return [stamp(parse_automation(spec), None) for spec in specs]


def workload(count: int, *, prefix: str, start_version: int = 1) -> list[dict[str, Any]]:
    """`count` valid events over 24 collections: registry and project, every event type.

    Versions rise per collection, so alias pointers move in order.
    """
    events: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    kinds = ("ADD_ARTIFACT_ALIAS", "ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT", "CREATE_ARTIFACT")
    for i in range(count):
        registry_event = i % 3 != 2
        if registry_event:
            collection = REGISTRY_COLLECTIONS[i % len(REGISTRY_COLLECTIONS)]
            project = REGISTRY_PROJECT
        else:
            collection = PROJECT_COLLECTIONS[(i // 3) % len(PROJECT_COLLECTIONS)]
            project = "vision"
        kind = kinds[(i // 7) % len(kinds)]
        path = f"{project}/{collection}"
        version = versions.get(path, start_version - 1) + 1
        versions[path] = version
        event: dict[str, Any] = {
            "event_id": f"{prefix}-{i:06d}",
            "event_type": kind,
            "occurred_at": "2026-11-26T10:00:00Z",
            "author": ("alice", "bob", "carol")[i % 3],
            "entity": ENTITY,
            "project": project,
            "artifact": {
                "collection": collection,
                "type": "model" if registry_event else "dataset",
                "version": version,
                "digest": f"{i:08x}",
                "aliases": ["latest"],
                "tags": list(TAGS[i % len(TAGS)]),
                "metadata": {"accuracy": (i % 10) / 10, "step": i},
            },
        }
        if registry_event:
            event["registry"] = "model"
        if kind == "ADD_ARTIFACT_ALIAS":
            event["alias"] = ALIASES[(i // 2) % len(ALIASES)]
        elif kind == "LINK_ARTIFACT":
            event["source"] = {
                "entity": ENTITY,
                "project": "vision",
                "collection": collection,
                "version": version,
            }
        events.append(event)
    return events


def event_topic(settings: Settings, event: Mapping[str, Any]) -> str:
    """The event topic an event belongs on."""
    return settings.registry_events_topic if "registry" in event else settings.artifact_events_topic


def event_key(event: Mapping[str, Any]) -> bytes:
    """The collection path, the events' Kafka key."""
    return f"{event['entity']}/{event['project']}/{event['artifact']['collection']}".encode()


def records_of(
    settings: Settings, events: Iterable[Mapping[str, Any]]
) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of each event, for the producer."""
    return [
        (event_topic(settings, event), event_key(event), serialization.dumps(event))
        for event in events
    ]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key."""
    # aiokafka ships no type hints, so murmur2 is Any to mypy; it returns an int.
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class ExpectedJob:
    """One job `hookstream evaluate` says the workers must produce."""

    job_id: str
    event_id: str
    automation_id: str
    action_type: str
    previous_version: int | None


def expected_jobs(
    automations: Sequence[Automation], events: Sequence[Mapping[str, Any]], tmp: Path
) -> list[ExpectedJob]:
    """Run `hookstream evaluate` (the workers' own Pipeline, no Kafka) over files."""
    auto_file = tmp / "fault-automations.json"
    events_file = tmp / "fault-events.jsonl"
    auto_file.write_bytes(
        serialization.dumps([a.model_dump(mode="json", exclude_none=True) for a in automations])
    )
    events_file.write_bytes(b"\n".join(serialization.dumps(e) for e in events) + b"\n")
    out, err = io.StringIO(), io.StringIO()
    code = run_evaluate(auto_file, events_file, out, err)
    assert code == 0, err.getvalue()
    assert not err.getvalue(), f"the workload must be valid: {err.getvalue()[:500]}"
    jobs = []
    # Split on newlines only: str.splitlines also splits at U+0085 and U+2028, which a
    # job's event may hold as text.
    for line in filter(None, out.getvalue().split("\n")):
        job = serialization.loads(line)
        jobs.append(
            ExpectedJob(
                job["job_id"],
                job["event_id"],
                job["automation_id"],
                job["action_type"],
                job["previous_version"],
            )
        )
    return jobs


async def _config_value(
    admin: AIOKafkaAdminClient, kind: ConfigResourceType, resource: str, name: str
) -> str | None:
    """One configuration value of a topic or broker, as it reports it; None if absent."""
    wanted = ConfigResource(kind, resource, configs={name: None})
    (response,) = await admin.describe_configs([wanted])
    for item in response.to_object()["resources"]:
        for entry in item["config_entries"]:
            if entry["config_names"] == name:
                return str(entry["config_value"])
    return None


def topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    """One configuration value of a topic, as the broker reports it."""

    async def read() -> str | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return await _config_value(admin, ConfigResourceType.TOPIC, topic, name)
        finally:
            await admin.close()

    return asyncio.run(read())


def broker_config(bootstrap: str, name: str) -> str | None:
    """One configuration value of the (first) broker, as it reports it."""

    async def read() -> str | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            brokers = await admin.describe_cluster()
            node = str(brokers["brokers"][0]["node_id"])
            return await _config_value(admin, ConfigResourceType.BROKER, node, name)
        finally:
            await admin.close()

    return asyncio.run(read())


def has_stock_size_limits(bootstrap: str) -> bool:
    """Whether the broker keeps Kafka's default `message.max.bytes` (1 MiB + 12 bytes)."""
    value = broker_config(bootstrap, "message.max.bytes")
    return value is not None and int(value) <= KAFKA_DEFAULT_MAX_MESSAGE_BYTES


def apply(settings: Settings, automations: list[Automation]) -> None:
    """Write automations to the compacted topic (as `hookstream automations apply`)."""
    asyncio.run(apply_automations(settings, automations))


@dataclass(slots=True)
class JobFigures:
    """What the workers produced, against what was expected."""

    expected: int
    seen: int
    unique: int
    lost: list[str]
    unexpected: list[str]
    duplicates: int
    split_pairs: list[tuple[str, str]]
    jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def columns(self) -> dict[str, int]:
        """The report columns these figures fill: jobs expected and seen, lost, duplicates."""
        return {
            "jobs_expected": self.expected,
            "jobs_seen": self.seen,
            "lost": len(self.lost),
            "duplicates": self.duplicates,
        }


def job_figures(expected: Sequence[ExpectedJob], records: Sequence[Record]) -> JobFigures:
    """Compare jobs read back with the expectation: lost, unexpected, duplicates."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    pairs: dict[tuple[str, str], set[str]] = {}
    for record in records:
        job = record.json()
        by_id.setdefault(job["job_id"], []).append(job)
        pairs.setdefault((job["event_id"], job["automation_id"]), set()).add(job["job_id"])
    wanted = {job.job_id for job in expected}
    seen = sum(len(copies) for copies in by_id.values())
    return JobFigures(
        expected=len(wanted),
        seen=seen,
        unique=len(by_id),
        lost=sorted(wanted - by_id.keys()),
        unexpected=sorted(by_id.keys() - wanted),
        duplicates=seen - len(by_id),
        split_pairs=sorted(pair for pair, ids in pairs.items() if len(ids) != 1),
        jobs=by_id,
    )


def job_id_of(value: bytes | None) -> str | None:
    """The job_id of an action job record (the reader's key); None for other records."""
    if value is None:
        return None
    job_id: str | None = serialization.loads(value).get("job_id")
    return job_id


def job_topics(settings: Settings, uid: str) -> list[str]:
    """Every topic the fault automations write jobs to."""
    return [*settings.action_topics.values(), f"fault-mirror-{uid}"]


# --- webhook receiver hits ---------------------------------------------------------


def is_2xx(hit: Hit) -> bool:
    """Whether the receiver answered this request with a 2xx."""
    return hit.status is not None and 200 <= hit.status < 300


def succeeded(receiver: Receiver) -> set[str]:
    """Webhook-ids that got a 2xx at least once."""
    return {hit.webhook_id for hit in list(receiver.hits) if is_2xx(hit)}


def hits_by_id(receiver: Receiver) -> dict[str, list[Hit]]:
    """Hits per webhook-id, in arrival order (one pass over the hits)."""
    grouped: dict[str, list[Hit]] = {}
    for hit in list(receiver.hits):
        grouped.setdefault(hit.webhook_id, []).append(hit)
    return grouped


def first_2xx(hits: list[Hit]) -> float:
    """Arrival time of the first request of an id that was answered 2xx (inf: none)."""
    return next((h.at for h in hits if is_2xx(h)), float("inf"))


def posts_after_success(hits: list[Hit]) -> int:
    """POSTs of one webhook-id that arrived after its first 2xx."""
    first = first_2xx(hits)
    return sum(1 for h in hits if h.at > first)


# --- a dedicated broker -------------------------------------------------------------


def _free_pair(start: int) -> int:
    for port in range(start, start + 400, 2):
        ok = True
        for candidate in (port, port + 1):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", candidate))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError(f"no free port pair from {start}")


def require_broker_tools() -> None:
    """Skip without Java or the resolved Kafka jars (a dedicated broker needs both); CI fails.

    The jars come from `make test-tools`: a test never resolves them from Maven Central.
    """
    missing = [tool for tool in ("java",) if shutil.which(tool) is None]
    if not _local_kafka().jars_resolved():
        missing.append("the Kafka jars (`make test-tools` resolves them)")
    if missing:
        message = f"a dedicated broker needs {' and '.join(missing)}"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)


def start_local_broker(local: Any, port: int) -> bool:
    """(Re)start our own broker on `port` and `port + 1`; False if one was already there."""
    heap = os.environ.get("HOOKSTREAM_FAULTS_KAFKA_HEAP", "384m")
    return bool(local.start(port, port + 1, heap, 180.0))


@contextlib.contextmanager
def dedicated_broker(first_port: int = 27092) -> Iterator[tuple[int, Any]]:
    """A broker of our own from the local jars (never the shared one), stopped and wiped after.

    Yields (port, the local_kafka module) so the test can stop and start it again.
    """
    local = _local_kafka()
    port = _free_pair(int(os.environ.get("HOOKSTREAM_FAULTS_KAFKA_PORT", first_port)))
    if not start_local_broker(local, port):
        raise RuntimeError(f"port {port} already had a broker; refusing to restart someone else's")
    try:
        yield port, local
    finally:
        local.stop(port, quiet=True)
        shutil.rmtree(local.run_dir(port), ignore_errors=True)
