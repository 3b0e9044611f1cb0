"""Automation writes of the API: validate, stamp, write the compacted topic, read back.

State is the worker's rule book (its copy of the automations topic), so every worker
answers with the same list. A write goes to the topic with acks=all and then waits,
bounded, until this worker's rule book has applied it: a GET after a POST on the same
worker sees the POST. Two writers of one id on different workers at the same moment
are not serialised (last write wins); on one worker a lock serialises them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.api.patch import merge_patch
from app.api.problems import ApiError
from app.api.validation import validate_automation
from app.contract.automations import Automation
from app.core.matching import AutomationIndex
from app.core.stored import MANAGED_FIELDS, same_spec, spec_json, stamp, stored_json, to_record
from app.settings import Settings

__all__ = ["AppliedRules", "AutomationStore", "Send", "WriteResult"]

log = logging.getLogger(__name__)


class Send(Protocol):
    """Produce a record; (partition, offset) once Kafka has acknowledged it."""

    def __call__(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[tuple[int, int]]:
        """Send one record (with Kafka headers when given)."""
        ...


class AppliedRules(Protocol):
    """What the store needs of the worker's rule book (app.stream.automations.RuleBook)."""

    @property
    def ready(self) -> asyncio.Event:
        """Set once the whole automations topic has been applied."""
        ...

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at ``offset`` of ``partition`` is applied."""
        ...


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did, and whether this worker's rule book holds it already."""

    automation: Automation | None
    outcome: Literal["created", "updated", "unchanged", "deleted"]
    applied: bool = True


class AutomationStore:
    """Create, replace, patch and delete automations through the compacted topic."""

    def __init__(
        self, settings: Settings, index: AutomationIndex, rulebook: AppliedRules, send: Send
    ) -> None:
        self._settings = settings
        self._index = index
        self._rulebook = rulebook
        self._send = send
        self._lock = asyncio.Lock()

    def ensure_loaded(self) -> None:
        """Refuse with 503 until the rule book has read the whole topic once."""
        if not self._rulebook.ready.is_set():
            raise ApiError(
                503, "automations are still loading; retry shortly", headers={"Retry-After": "1"}
            )

    def all(self) -> list[Automation]:
        """Every automation, enabled or not."""
        return [compiled.automation for compiled in self._index]

    def get(self, automation_id: str) -> Automation:
        """One automation; raises ApiError 404."""
        compiled = self._index.get(automation_id)
        if compiled is None:
            raise ApiError(404, f"automation '{automation_id}' not found")
        return compiled.automation

    async def create(self, data: Any) -> WriteResult:
        """A new automation (revision 1); 409 when the id exists, 422 when invalid."""
        automation = validate_automation(data, self._settings)
        async with self._lock:
            if automation.id in self._index:
                raise ApiError(
                    409,
                    f"automation '{automation.id}' already exists; "
                    "PUT or PATCH /automations/{id} changes it",
                )
            stamped = stamp(automation, None)
            applied = await self._write(stamped.id, to_record(stamped))
        return WriteResult(stamped, "created", applied)

    async def replace(self, automation_id: str, data: Any) -> WriteResult:
        """Replace an automation whole; unchanged specs are not rewritten."""
        if isinstance(data, dict):
            body_id = data.get("id", automation_id)
            if body_id != automation_id:
                raise ApiError(
                    422,
                    "invalid automation",
                    errors=[("id", f"must equal the id in the path ('{automation_id}')")],
                )
            data = {**data, "id": automation_id}
        async with self._lock:
            current = self.get(automation_id)
            return await self._update(current, data)

    async def patch(self, automation_id: str, patch: Any) -> WriteResult:
        """Merge-patch an automation (RFC 7396), e.g. {"enabled": false}."""
        if not isinstance(patch, dict):
            raise ApiError(400, "a PATCH body must be a JSON object (JSON Merge Patch)")
        async with self._lock:
            current = self.get(automation_id)
            merged = merge_patch(
                spec_json(current), {k: v for k, v in patch.items() if k not in MANAGED_FIELDS}
            )
            if merged.get("id") != automation_id:
                raise ApiError(422, "invalid automation", errors=[("id", "cannot be changed")])
            return await self._update(current, merged)

    async def delete(self, automation_id: str) -> WriteResult:
        """Write a tombstone; 404 when unknown."""
        async with self._lock:
            self.get(automation_id)
            applied = await self._write(automation_id, None)
        return WriteResult(None, "deleted", applied)

    async def _update(self, current: Automation, data: Any) -> WriteResult:
        automation = validate_automation(data, self._settings)
        old = stored_json(current)
        if same_spec(automation, old):
            return WriteResult(current, "unchanged")
        stamped = stamp(automation, old)
        applied = await self._write(stamped.id, to_record(stamped))
        return WriteResult(stamped, "updated", applied)

    async def _write(self, automation_id: str, value: bytes | None) -> bool:
        try:
            partition, offset = await self._send(
                self._settings.automations_topic, automation_id.encode(), value
            )
        except Exception as exc:  # any producer failure: the write did not happen
            log.error("writing automation %r failed: %s", automation_id, exc)
            raise ApiError(503, f"could not write to Kafka: {exc}") from exc
        applied = await self._rulebook.wait_applied(
            partition, offset, self._settings.api_write_wait_seconds
        )
        if not applied:
            log.warning(
                "automation %r written at %d/%d but not applied within %.1fs",
                automation_id,
                partition,
                offset,
                self._settings.api_write_wait_seconds,
            )
        return applied
