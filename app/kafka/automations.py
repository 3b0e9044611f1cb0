"""Read and write automations on the compacted automations topic (the CLI's apply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app import serialization
from app.contract.automations import Automation
from app.core.stored import same_spec, stamp, to_record
from app.kafka.clients import produce, read_to_end
from app.settings import Settings

__all__ = ["ApplyResult", "apply_automations", "current_automations", "delete_automation"]


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


async def delete_automation(settings: Settings, automation_id: str) -> None:
    """Write a tombstone: every worker drops the automation."""
    await produce(
        settings.kafka_bootstrap_servers,
        settings.automations_topic,
        [(automation_id.encode(), None)],
    )
