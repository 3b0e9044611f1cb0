"""The benchmark workload: events, automations and the jobs they must produce, all seeded.

Events come from one organisation's hot scopes (8 projects, 2 registries). Ten *core*
automations make about 10% of events produce one job; every other automation is
*background*: mostly other teams' scopes, a tenth on the hot scopes with filters that
never match. The job count is therefore the same at 10 and at 10,000 automations,
so the scaling run measures matching, not extra output.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2

from app.contract.automations import Automation, parse_automation
from app.serialization import dumps

__all__ = [
    "BenchEvent",
    "Versions",
    "automations",
    "bench_event",
    "core_automations",
    "epoch_seconds",
    "event_dict",
    "events",
    "now_iso",
    "partition_of",
    "with_sentinels",
]

ENTITY = "acme"
PROJECTS = ("vision", "nlp", "speech", "recsys", "forecast", "tabular", "robotics", "search")
REGISTRIES = ("model", "dataset")
COLLECTIONS_PER_PROJECT = 12
COLLECTIONS_PER_REGISTRY = 40
AUTHORS = ("alice", "bob", "carol", "dave", "erin", "frank")
TAGS = ("baseline", "candidate", "nightly", "gpu", "reviewed", "experimental")
ALIASES = (
    ("staging", 30),
    ("candidate", 25),
    ("best", 10),
    ("production", 14),
    ("prod-eu", 4),
    ("reviewed", 10),
    ("test-set-quality-check", 6),
    ("archived", 8),
)


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """One event ready to produce: its topic kind, key and JSON bytes."""

    registry: bool
    key: bytes
    value: bytes


@dataclass(slots=True)
class Versions:
    """Next version per collection, so versions grow as in a real registry."""

    by_path: dict[str, int] = field(default_factory=dict)

    def next(self, path: str) -> int:
        version = self.by_path.get(path, 0)
        self.by_path[path] = version + 1
        return version


def _project_collections(project: str) -> list[str]:
    kinds = ("dataset", "model")
    return [f"{project}-{kinds[i % 2]}-{i}" for i in range(COLLECTIONS_PER_PROJECT)]


def _registry_collections(registry: str) -> list[str]:
    return [f"{registry}-{i}" for i in range(COLLECTIONS_PER_REGISTRY)]


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _artifact(
    rng: random.Random, collection: str, version: int, kind: str, aliases: list[str]
) -> dict[str, Any]:
    return {
        "collection": collection,
        "type": kind,
        "version": version,
        "digest": _hex(rng, 32),
        "aliases": aliases,
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "metadata": {
            "accuracy": round(rng.uniform(0.5, 0.99), 4),
            "loss": round(rng.uniform(0.01, 2.0), 4),
            "rows": rng.choice((500, 5_000, 60_000, 120_000)),
            "framework": rng.choice(("torch", "jax", "sklearn")),
        },
    }


def event_dict(
    rng: random.Random, index: int, prefix: str, versions: Versions, occurred_at: str
) -> dict[str, Any]:
    """One event: 45% CREATE_ARTIFACT, 35% ADD_ARTIFACT_ALIAS, 20% LINK_ARTIFACT."""
    roll = rng.random()
    author = rng.choice(AUTHORS)
    base: dict[str, Any] = {
        "event_id": f"{prefix}-{index:08d}",
        "occurred_at": occurred_at,
        "author": author,
        "entity": ENTITY,
    }
    if roll < 0.45 or (roll < 0.80 and rng.random() < 0.5):
        project = rng.choice(PROJECTS)
        collection = rng.choice(_project_collections(project))
        kind = "dataset" if "-dataset-" in collection else "model"
        version = versions.next(f"{project}/{collection}")
        base["project"] = project
        if roll < 0.45:
            base["event_type"] = "CREATE_ARTIFACT"
            base["artifact"] = _artifact(rng, collection, version, kind, ["latest"])
        else:
            alias = rng.choices([a for a, _ in ALIASES], [w for _, w in ALIASES])[0]
            base["event_type"] = "ADD_ARTIFACT_ALIAS"
            base["artifact"] = _artifact(rng, collection, version, kind, ["latest", alias])
            base["alias"] = alias
        return base
    registry = rng.choice(REGISTRIES)
    collection = rng.choice(_registry_collections(registry))
    kind = "model" if registry == "model" else "dataset"
    base["project"] = f"wandb-registry-{registry}"
    base["registry"] = registry
    version = versions.next(f"{registry}/{collection}")
    if roll < 0.80:
        alias = rng.choices([a for a, _ in ALIASES], [w for _, w in ALIASES])[0]
        base["event_type"] = "ADD_ARTIFACT_ALIAS"
        base["artifact"] = _artifact(rng, collection, version, kind, [alias])
        base["alias"] = alias
    else:
        source_project = rng.choice(PROJECTS)
        base["event_type"] = "LINK_ARTIFACT"
        base["artifact"] = _artifact(rng, collection, version, kind, ["latest"])
        base["source"] = {
            "entity": ENTITY,
            "project": source_project,
            "collection": rng.choice(_project_collections(source_project)),
            "version": rng.randint(0, 50),
        }
    return base


def bench_event(event: dict[str, Any]) -> BenchEvent:
    """An event dict as it is produced: keyed by collection path, registry ones apart."""
    key = f"{event['entity']}/{event['project']}/{event['artifact']['collection']}".encode()
    return BenchEvent("registry" in event, key, dumps(event))


def now_iso() -> str:
    """The current UTC time as the contract writes it (RFC 3339, microseconds)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def epoch_seconds(stamp: str) -> float:
    """An RFC 3339 timestamp (as now_iso writes it) as seconds since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def events(count: int, *, seed: int = 7, prefix: str = "bench") -> Iterator[BenchEvent]:
    """`count` seeded events, each stamped with the time it is generated."""
    rng = random.Random(seed)
    versions = Versions()
    stamp = now_iso()
    for index in range(count):
        if index % 1000 == 0:
            stamp = now_iso()
        yield bench_event(event_dict(rng, index, prefix, versions, stamp))


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    # aiokafka ships no type hints, so murmur2 is Any to mypy; it returns an int.
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


def _sentinel(
    registry: bool, partition: int, partitions: int, index: int, prefix: str
) -> BenchEvent:
    """A key on `partition` and an event on it that a core automation always matches."""
    stamp = now_iso()
    rng = random.Random(index)
    for n in range(10_000):
        if registry:
            collection = f"model-{n}"
            project = "wandb-registry-model"
        else:
            collection = f"vision-model-s{n}"
            project = "vision"
        key = f"{ENTITY}/{project}/{collection}".encode()
        if partition_of(key, partitions) != partition:
            continue
        event: dict[str, Any] = {
            "event_id": f"{prefix}-sentinel-{index:04d}",
            "event_type": "ADD_ARTIFACT_ALIAS",
            "occurred_at": stamp,
            "author": "bench",
            "entity": ENTITY,
            "project": project,
            "artifact": _artifact(rng, collection, 1, "model", ["production"]),
            "alias": "production" if registry else "test-set-quality-check",
        }
        if registry:
            event["registry"] = "model"
        return BenchEvent(registry, key, dumps(event))
    raise RuntimeError(f"no sentinel key for partition {partition}")


def with_sentinels(
    stream: Sequence[BenchEvent], partitions: int, *, prefix: str = "bench"
) -> list[BenchEvent]:
    """Events framed by a matching event first and last on every partition of both topics.

    The first and last jobs then mark when the worker started and finished consuming.
    """
    head: list[BenchEvent] = []
    tail: list[BenchEvent] = []
    index = 0
    for registry in (True, False):
        for partition in range(partitions):
            for out in (head, tail):
                out.append(_sentinel(registry, partition, partitions, index, prefix))
                index += 1
    return head + list(stream) + tail


def _webhook(payload_vars: Sequence[str]) -> dict[str, Any]:
    payload = "{" + ", ".join(f'"{v}": "${{{v}}}"' for v in payload_vars) + "}"
    return {
        "type": "webhook",
        "url": "https://ci.example.com/hooks/deploy",
        "payload": payload,
        "headers": {"X-Hookstream-Event": "${event_type}"},
        "secret": "DEPLOY_HOOK_SECRET",
    }


def _notification(channel: str) -> dict[str, Any]:
    return {
        "type": "notification",
        "channel": channel,
        "title": "${artifact_collection_name}:${artifact_version} got ${alias}",
        "message": "${event_author} changed ${artifact_version_string}.",
    }


def _queue_job(queue: str) -> dict[str, Any]:
    return {
        "type": "queue_job",
        "queue": queue,
        "job": "acme/evals/run-suite:latest",
        "config": {"model": "${artifact_version_string}", "by": "${event_author}"},
    }


def core_automations() -> list[dict[str, Any]]:
    """The ten automations that produce every job (the same at every size)."""
    return [
        {
            "id": "core-deploy-on-production",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": {"type": "registry", "entity": ENTITY, "registry": "model"},
            "filter": {"$or": [{"$and": [{"alias": {"$regex": "^prod"}}]}]},
            "action": _webhook(["artifact_version_string", "alias", "previous_version"]),
        },
        {
            "id": "core-eval-linked-candidate",
            "event": "LINK_ARTIFACT",
            "scope": {"type": "registry", "entity": ENTITY, "registry": "model"},
            "filter": {"tags": {"$in": ["candidate"]}, "metadata.accuracy": {"$gte": 0.8}},
            "action": _queue_job("evaluation"),
        },
        {
            "id": "core-train-on-dataset",
            "event": "CREATE_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": ENTITY,
                "project": "vision",
                "collection": "vision-dataset-0",
            },
            "filter": {"type": "dataset", "metadata.rows": {"$gte": 1000}},
            "action": _queue_job("gpu-training"),
        },
        {
            "id": "core-notify-quality-check",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": {"type": "project", "entity": ENTITY, "project": "vision"},
            "filter": {"alias": "test-set-quality-check"},
            "action": _notification("SLACK_DATA_TEAM"),
        },
        {
            "id": "core-dataset-reviewed",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": {"type": "registry", "entity": ENTITY, "registry": "dataset"},
            "filter": {"alias": {"$in": ["reviewed"]}},
            "action": _notification("SLACK_DATA_TEAM"),
        },
        {
            "id": "core-nlp-accurate-model",
            "event": "CREATE_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": ENTITY,
                "project": "nlp",
                "collection": "nlp-model-1",
            },
            "filter": {"metadata.accuracy": {"$gte": 0.9}},
            "action": _webhook(["artifact_version_string", "artifact_metadata.accuracy"]),
        },
        {
            "id": "core-link-torch-model",
            "event": "LINK_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": ENTITY,
                "registry": "model",
                "collection": "model-3",
            },
            "filter": {"metadata.framework": "torch"},
            "action": _webhook(["artifact_version_string", "artifact_digest"]),
        },
        {
            "id": "core-speech-best",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": {"type": "project", "entity": ENTITY, "project": "speech"},
            "filter": {"$or": [{"alias": "best"}, {"alias": {"$regex": "^prod"}}]},
            "action": _queue_job("deploy"),
        },
        {
            "id": "core-recsys-nightly-gpu",
            "event": "CREATE_ARTIFACT",
            "scope": {
                "type": "artifact_collection",
                "entity": ENTITY,
                "project": "recsys",
                "collection": "recsys-model-3",
            },
            "filter": {"tags": {"$all": ["nightly"]}},
            "action": _notification("SLACK_RECSYS"),
        },
        {
            "id": "core-dataset-link-large",
            "event": "LINK_ARTIFACT",
            "scope": {"type": "registry", "entity": ENTITY, "registry": "dataset"},
            "filter": {"metadata.rows": {"$gt": 50_000}, "metadata.framework": {"$ne": "jax"}},
            "action": _queue_job("ingest"),
        },
    ]


def _rand_name(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(string.ascii_lowercase) for _ in range(8))


_NEVER_FILTERS: tuple[dict[str, Any], ...] = (
    {"alias": {"$regex": "^never-[a-z]+$"}},
    {"metadata.accuracy": {"$gt": 2.0}},
    {"tags": {"$all": ["archived", "deprecated"]}},
    {"$and": [{"metadata.framework": "cobol"}, {"type": "model"}]},
    {"author": {"$in": ["mallory", "trent"]}},
)

_COLD_FILTERS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"alias": {"$regex": "^(prod|staging)-v[0-9]+$"}},
    {"metadata.accuracy": {"$gte": 0.95}, "metadata.framework": "torch"},
    {"tags": {"$in": ["candidate", "baseline"]}},
    {"$or": [{"alias": "production"}, {"metadata.rows": {"$gt": 10_000}}]},
)


def _action(rng: random.Random) -> dict[str, Any]:
    pick = rng.randrange(3)
    if pick == 0:
        return _webhook(["artifact_version_string", "alias"])
    if pick == 1:
        return _notification("SLACK_ML")
    return _queue_job("training")


def _hot_keys() -> list[tuple[str, dict[str, Any]]]:
    """Every (event type, scope) an event of the workload can reach."""
    keys: list[tuple[str, dict[str, Any]]] = []
    for registry in REGISTRIES:
        for collection in _registry_collections(registry):
            scope = {
                "type": "artifact_collection",
                "entity": ENTITY,
                "registry": registry,
                "collection": collection,
            }
            keys += [(event, scope) for event in ("ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT")]
        scope = {"type": "registry", "entity": ENTITY, "registry": registry}
        keys += [(event, scope) for event in ("ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT")]
    for project in PROJECTS:
        for collection in _project_collections(project):
            scope = {
                "type": "artifact_collection",
                "entity": ENTITY,
                "project": project,
                "collection": collection,
            }
            keys += [(event, scope) for event in ("ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT")]
        scope = {"type": "project", "entity": ENTITY, "project": project}
        keys.append(("ADD_ARTIFACT_ALIAS", scope))
    return keys


_HOT_KEYS = _hot_keys()


def _hot_scope(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A hot (event type, scope) key, uniform over the keys events can reach."""
    event, scope = rng.choice(_HOT_KEYS)
    return event, dict(scope)


def _cold_scope(rng: random.Random, index: int) -> tuple[str, dict[str, Any]]:
    """Another team's scope: an entity the hot events never come from."""
    entity = f"team-{index % 400}"
    roll = index % 3
    if roll == 0:
        scope = {
            "type": "artifact_collection",
            "entity": entity,
            "project": _rand_name(rng, "p-"),
            "collection": _rand_name(rng, "c-"),
        }
        return rng.choice(("ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT")), scope
    if roll == 1:
        scope = {"type": "project", "entity": entity, "project": _rand_name(rng, "p-")}
        return rng.choice(("ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT")), scope
    scope = {"type": "registry", "entity": entity, "registry": rng.choice(REGISTRIES)}
    return rng.choice(("ADD_ARTIFACT_ALIAS", "LINK_ARTIFACT")), scope


def background_automation(index: int) -> dict[str, Any]:
    """Background automation `index`: 90% other teams' scopes, 10% hot but never matching."""
    rng = random.Random(1_000_003 * index + 17)
    if index % 10 == 0:
        event, scope = _hot_scope(rng)
        flt: dict[str, Any] | None = _NEVER_FILTERS[(index // 10) % len(_NEVER_FILTERS)]
    else:
        event, scope = _cold_scope(rng, index)
        flt = _COLD_FILTERS[index % len(_COLD_FILTERS)]
    out: dict[str, Any] = {
        "id": f"bg-{index:06d}",
        "event": event,
        "scope": scope,
        "action": _action(rng),
    }
    if flt is not None:
        out["filter"] = flt
    return out


def automations(count: int) -> list[Automation]:
    """`count` automations: the core ten (fewer if count < 10), then background ones."""
    specs = core_automations()[:count]
    specs += [background_automation(i) for i in range(count - len(specs))]
    out = []
    for spec in specs:
        spec.setdefault("name", spec["id"].replace("-", " "))
        out.append(parse_automation(spec))
    return out
