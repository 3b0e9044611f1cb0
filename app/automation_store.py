"""Read and write automations on the compacted automations topic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app import serialization
from app.kafka_io import produce, read_to_end
from app.models import Automation
from app.settings import Settings

__all__ = [
    "MANAGED_FIELDS",
    "ApplyResult",
    "apply_automations",
    "current_automations",
    "delete_automation",
    "same_spec",
    "spec_json",
    "stamp",
    "stored_json",
    "to_record",
]

# Fields the store owns; a user's file never decides them.
MANAGED_FIELDS = frozenset({"revision", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What `apply` did with one automation."""

    id: str
    status: Literal["created", "updated", "unchanged"]
    revision: int


async def current_automations(settings: Settings) -> dict[str, dict[str, Any]]:
    """The latest JSON of every live automation (tombstones remove)."""
    state: dict[str, dict[str, Any]] = {}
    for record in await read_to_end(settings.kafka_bootstrap_servers, settings.automations_topic):
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:
            state.pop(key, None)
        else:
            try:
                state[key] = serialization.loads(record.value)
            except serialization.JSONDecodeError:
                continue  # unreadable records are skipped, as the rule book does
    return state


def stored_json(automation: Automation) -> dict[str, Any]:
    """An automation as the topic and the API carry it."""
    return automation.model_dump(mode="json", exclude_none=True)


def spec_json(automation: Automation) -> dict[str, Any]:
    """`stored_json` without the fields the store manages: what a user decides."""
    return automation.model_dump(mode="json", exclude=set(MANAGED_FIELDS), exclude_none=True)


def same_spec(new: Automation, old: dict[str, Any]) -> bool:
    """Whether two automations differ only in the fields the store manages."""
    mine = spec_json(new)
    theirs = {k: v for k, v in old.items() if k not in MANAGED_FIELDS and v is not None}
    return bool(serialization.loads(serialization.dumps(mine)) == theirs)


def stamp(new: Automation, old: dict[str, Any] | None) -> Automation:
    """The automation with revision and timestamps set from its predecessor."""
    now = datetime.now(UTC)
    if old is None:
        return new.model_copy(update={"revision": 1, "created_at": now, "updated_at": now})
    created = old.get("created_at") or now
    if isinstance(created, str):
        # Read back from the topic's JSON: model_copy does not validate, so parse here.
        created = datetime.fromisoformat(created)
    return new.model_copy(
        update={
            "revision": int(old.get("revision", 0)) + 1,
            "created_at": created,
            "updated_at": now,
        }
    )


async def apply_automations(settings: Settings, automations: list[Automation]) -> list[ApplyResult]:
    """Declarative apply: write new or changed automations, leave unchanged ones alone."""
    current = await current_automations(settings)
    results: list[ApplyResult] = []
    records: list[tuple[bytes | None, bytes | None]] = []
    for automation in automations:
        old = current.get(automation.id)
        if old is not None and same_spec(automation, old):
            results.append(ApplyResult(automation.id, "unchanged", int(old.get("revision", 1))))
            continue
        stamped = stamp(automation, old)
        records.append((stamped.id.encode(), to_record(stamped)))
        results.append(
            ApplyResult(stamped.id, "created" if old is None else "updated", stamped.revision)
        )
    if records:
        await produce(settings.kafka_bootstrap_servers, settings.automations_topic, records)
    return results


def to_record(automation: Automation) -> bytes:
    """The JSON value written to the automations topic."""
    return serialization.dumps(stored_json(automation))


async def delete_automation(settings: Settings, automation_id: str) -> None:
    """Write a tombstone: every worker drops the automation."""
    await produce(
        settings.kafka_bootstrap_servers,
        settings.automations_topic,
        [(automation_id.encode(), None)],
    )
