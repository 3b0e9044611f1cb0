"""Automations as a Faust GlobalTable whose changelog is the compacted automations topic.

Every worker holds every automation. The API (any worker) writes the topic; Faust's
recovery reads it on start and then keeps reading it as a standby, and each record
is applied to the matching index as it arrives (``on_changelog_event``): an upsert,
or a tombstone that removes the automation. The settings are the ones
faust-streaming #283 needs with several workers: one partition and buffer sizes 1,
and ``synchronize_all_active_partitions`` so that a worker keeps reading partition 0
after recovery even though the assignor lists it as active everywhere.

The event agent waits for ``ready``: no event is matched before the automations
are loaded, or a restart would silently skip the jobs of the events in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from faust.tables.globaltable import GlobalTable

from app.core.matching import AutomationIndex
from app.core.pipeline import automation_from_record
from app.errors import HookstreamError
from app.stream.topics import raw_topic

__all__ = ["AUTOMATIONS_TABLE", "NamedChangelogGlobalTable", "RuleBook", "define_automations_table"]

log = logging.getLogger(__name__)

AUTOMATIONS_TABLE = "automations"


class NamedChangelogGlobalTable(GlobalTable):
    """A GlobalTable whose changelog may be any topic (the worker's ``GlobalTable`` class).

    Faust's assignor finds a global table's changelog by its default name,
    ``<app id>-<table>-changelog``, not by the ``changelog_topic`` the table was given:
    with the automations topic as changelog, the assignment fails on a KeyError and
    the group never settles (tests/functional/test_faust_upstream.py shows it).
    """

    def _changelog_topic_name(self) -> str:
        return str(self.changelog_topic.get_topic_name())


class RuleBook:
    """Applies automation records to an AutomationIndex and tracks what it applied."""

    def __init__(
        self, index: AutomationIndex, *, on_change: Callable[[str, bool], None] | None = None
    ) -> None:
        self.index = index
        self.ready = asyncio.Event()
        self.invalid_records = 0
        self._on_change = on_change
        # Keys whose latest record was applied (valid or not): reconcile skips them, so
        # a record read from the changelog is not applied (and refused) a second time.
        self._keys: set[str] = set()
        # Next offset applied, per partition, and an event set whenever it moves: the
        # API waits on them so that a read after a write sees the write.
        self._applied: dict[int, int] = {}
        self._advanced = asyncio.Event()

    def applied_offset(self, partition: int) -> int:
        """The next offset of ``partition`` to apply (0: none yet)."""
        return self._applied.get(partition, 0)

    def advance(self, partition: int, next_offset: int) -> None:
        """Record that everything below ``next_offset`` of ``partition`` is applied."""
        self._applied[partition] = max(next_offset, self._applied.get(partition, 0))
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at ``offset`` of ``partition`` is applied; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.applied_offset(partition) <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        """Apply one record of the compacted topic: an automation or a tombstone."""
        if isinstance(key, bytes):
            automation_id: str | None = key.decode("utf-8", "replace")
        else:
            automation_id = key or None
        if automation_id is not None:
            self._keys.add(automation_id)
        if value is None:
            if automation_id is not None and self.index.remove(automation_id):
                self._changed(automation_id, False)
            return
        try:
            automation = automation_from_record(value)
        except HookstreamError as exc:
            # The API refuses invalid automations; a record written around it is skipped.
            self.invalid_records += 1
            log.error("skipping invalid automation record %r: %s", automation_id, exc)
            return
        if automation is None:
            return
        if automation_id is not None and automation_id != automation.id:
            self.invalid_records += 1
            log.error("automation key %r does not match its id %r", automation_id, automation.id)
            return
        self.index.upsert(automation)
        self._changed(automation.id, True)

    def reconcile(self, records: Iterable[tuple[Any, bytes | None]]) -> None:
        """Make the index hold exactly ``records`` (a persisted table's contents)."""
        seen: set[str] = set()
        for key, value in records:
            name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            seen.add(name)
            if name not in self.index and name not in self._keys:
                self.apply(name, value)
        for compiled in list(self.index):
            if compiled.id not in seen:
                self.apply(compiled.id, None)

    def _changed(self, automation_id: str, present: bool) -> None:
        if self._on_change is not None:
            self._on_change(automation_id, present)


def define_automations_table(app: Any, topic: str, rulebook: RuleBook) -> Any:
    """The GlobalTable over the automations topic, feeding ``rulebook``."""

    async def on_changelog_event(event: Any) -> None:
        message = event.message
        rulebook.apply(message.key, message.value)
        rulebook.advance(message.partition, message.offset + 1)

    changelog = raw_topic(app, topic, 1)
    table = app.GlobalTable(
        AUTOMATIONS_TABLE,
        default=None,
        # bytes keys and values use the raw codec: the records are the API's JSON.
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        changelog_topic=changelog,
        # App.GlobalTable sets standby_buffer_size=1 itself (#283 needs both).
        recovery_buffer_size=1,
        synchronize_all_active_partitions=True,
        on_changelog_event=on_changelog_event,
        help="automation id -> automation JSON (the automations topic)",
    )

    async def on_recovered() -> None:
        # A persistent store replays only the changelog's tail: what it already held
        # is read from the store itself.
        rulebook.reconcile(table.data.items())
        if not rulebook.ready.is_set():
            log.info("automations loaded: %d", len(rulebook.index))
            rulebook.ready.set()

    table.on_recover(on_recovered)
    return table
