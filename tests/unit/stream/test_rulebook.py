"""RuleBook: automation records applied to the index, offsets waited on, contents reconciled."""

from __future__ import annotations

import asyncio

import pytest

from app.core.matching import AutomationIndex
from app.core.stored import to_record
from app.stream.automations import RuleBook
from tests.factories import make_automation

ID = "deploy-on-production"


class Book:
    """A RuleBook over a fresh index, recording its on_change calls."""

    def __init__(self, *ids: str) -> None:
        self.changes: list[tuple[str, bool]] = []
        self.index = AutomationIndex([make_automation(id=i) for i in ids])
        self.book = RuleBook(
            self.index, on_change=lambda i, present: self.changes.append((i, present))
        )

    def ids(self) -> set[str]:
        """Ids in the index."""
        return {c.id for c in self.index}


def record(automation_id: str = ID, **overrides: object) -> bytes:
    """The automations-topic record of an automation, as the API writes it."""
    return to_record(make_automation(id=automation_id, **overrides))


@pytest.mark.parametrize("key", [ID.encode(), ID])
def test_upsert_adds_the_automation(key: bytes | str) -> None:
    """A record (bytes or str key) adds its automation and reports the change."""
    b = Book()
    b.book.apply(key, record())
    assert b.ids() == {ID}
    assert b.changes == [(ID, True)]
    assert b.book.invalid_records == 0


def test_upsert_replaces_an_existing_revision() -> None:
    """A second record for the same id replaces the first."""
    b = Book()
    b.book.apply(ID.encode(), record(revision=1))
    b.book.apply(ID.encode(), record(revision=2, name="renamed"))
    compiled = b.index.get(ID)
    assert compiled is not None
    assert (compiled.revision, compiled.name) == (2, "renamed")
    assert len(b.index) == 1
    assert b.changes == [(ID, True), (ID, True)]


def test_tombstone_removes_the_automation() -> None:
    """A null value removes the automation named by the key."""
    b = Book(ID, "other")
    b.book.apply(ID.encode(), None)
    assert b.ids() == {"other"}
    assert b.changes == [(ID, False)]


def test_tombstone_of_unknown_id_changes_nothing() -> None:
    """A tombstone for an absent id (or with no key) is a no-op, not a reported change."""
    b = Book(ID)
    b.book.apply(b"never-existed", None)
    b.book.apply(None, None)
    assert b.ids() == {ID}
    assert b.changes == []
    assert b.book.invalid_records == 0


@pytest.mark.parametrize(
    "value",
    [
        b"{oops",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"id": "deploy-on-production"}',
        b'{"id": 7, "event": ["x"], "scope": "all", "action": null}',
    ],
    ids=["not-json", "not-utf8", "not-object", "missing-fields", "wrong-types"],
)
def test_invalid_record_is_counted_and_skipped(value: bytes) -> None:
    """An unreadable or invalid automation is counted; the index keeps what it had."""
    b = Book(ID)
    before = b.index.get(ID)
    b.book.apply(ID.encode(), value)
    assert b.book.invalid_records == 1
    assert b.index.get(ID) is before
    assert b.ids() == {ID}
    assert b.changes == []


def test_key_differing_from_id_is_refused() -> None:
    """A record whose key is not its automation's id is counted and not applied."""
    b = Book("other")
    b.book.apply(b"other", record(ID))
    assert b.book.invalid_records == 1
    assert b.ids() == {"other"}
    assert ID not in b.index
    assert b.changes == []


def test_record_without_key_is_applied_by_its_id() -> None:
    """With no key, the record's own id is used (nothing to disagree with)."""
    b = Book()
    b.book.apply(None, record())
    assert b.ids() == {ID}
    assert b.book.invalid_records == 0


async def test_wait_applied_true_after_advance() -> None:
    """A waiter for offset 4 returns True once the book advances past it."""
    b = Book()
    waiter = asyncio.ensure_future(b.book.wait_applied(0, 4, timeout=5))
    await asyncio.sleep(0)
    b.book.advance(0, 4)  # offsets 0..3 applied: not yet
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.book.advance(0, 5)
    assert await asyncio.wait_for(waiter, 1) is True
    assert b.book.applied_offset(0) == 5


async def test_wait_applied_already_applied_returns_at_once() -> None:
    """An offset below the applied position needs no wait."""
    b = Book()
    b.book.advance(0, 10)
    assert await b.book.wait_applied(0, 9, timeout=0) is True


async def test_wait_applied_false_on_timeout() -> None:
    """With no advance (or one on another partition), the wait gives up with False."""
    b = Book()
    b.book.advance(1, 100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await b.book.wait_applied(0, 0, timeout=0.05) is False
    assert loop.time() - started >= 0.04
    assert b.book.applied_offset(0) == 0


def test_advance_never_moves_back() -> None:
    """A lower offset after a higher one leaves the applied position where it was."""
    b = Book()
    b.book.advance(0, 7)
    b.book.advance(0, 3)
    assert b.book.applied_offset(0) == 7


def test_reconcile_adds_missing_and_removes_absent() -> None:
    """reconcile() makes the index hold exactly the given records."""
    b = Book("kept", "gone")
    b.book.reconcile([(b"kept", record("kept")), ("added", record("added"))])
    assert b.ids() == {"kept", "added"}
    assert sorted(b.changes) == [("added", True), ("gone", False)]


def test_reconcile_with_no_records_empties_the_index() -> None:
    """An empty table leaves no automation in the index."""
    b = Book("a", "b")
    b.book.reconcile([])
    assert b.ids() == set()
    assert sorted(b.changes) == [("a", False), ("b", False)]


def test_reconcile_skips_invalid_records() -> None:
    """An invalid stored record is counted, not added; valid ones still are."""
    b = Book()
    b.book.reconcile([(b"bad", b"{oops"), (b"good", record("good"))])
    assert b.ids() == {"good"}
    assert b.book.invalid_records == 1


def test_reconcile_does_not_apply_a_changelog_record_twice() -> None:
    """An invalid record applied from the changelog is not refused again at recovery's end."""
    book = RuleBook(AutomationIndex())
    book.apply(b"bad", b"{nope")
    assert book.invalid_records == 1
    book.reconcile([(b"bad", b"{nope")])
    assert book.invalid_records == 1
    assert len(book.index) == 0
