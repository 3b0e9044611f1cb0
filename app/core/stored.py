"""Automations as the automations topic stores them: record JSON, managed fields, stamping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app import serialization
from app.contract.automations import Automation

__all__ = [
    "MANAGED_FIELDS",
    "same_spec",
    "spec_json",
    "stamp",
    "stored_json",
    "to_record",
]

# Fields the store owns; a user's file never decides them.
MANAGED_FIELDS = frozenset({"revision", "created_at", "updated_at"})


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


def to_record(automation: Automation) -> bytes:
    """The JSON value written to the automations topic."""
    return serialization.dumps(stored_json(automation))
