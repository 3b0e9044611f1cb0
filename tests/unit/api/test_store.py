"""AutomationStore without Kafka: conflicts, not-found, unchanged writes, the bounded wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.problems import ApiError
from app.api.store import AutomationStore
from app.core.matching import AutomationIndex
from app.settings import Settings
from app.stream.automations import RuleBook
from app.testing import RecordingWrites, Write


def webhook_automation(automation_id: str) -> dict[str, Any]:
    """A valid automation as the JSON body a client sends."""
    return {
        "id": automation_id,
        "name": automation_id,
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": {"type": "registry", "entity": "acme", "registry": "model"},
        "action": {"type": "webhook", "url": "https://ci.example.com/x", "payload": "{}"},
    }


class FakeTopic(RecordingWrites):
    """Records writes; applies them to the rule book unless `lagging`."""

    def __init__(self, rulebook: RuleBook, *, lagging: bool = False) -> None:
        super().__init__(on_write=self._apply)
        self.rulebook = rulebook
        self.lagging = lagging

    def _apply(self, write: Write) -> None:
        if not self.lagging:
            self.rulebook.apply(write.key, write.value)
            self.rulebook.advance(0, write.offset + 1)


def store(*, lagging: bool = False, wait: float = 5.0) -> tuple[AutomationStore, FakeTopic]:
    """A store over an in-memory rule book that has loaded the (empty) topic."""
    settings = Settings(api_write_wait_seconds=wait)
    index = AutomationIndex()
    rulebook = RuleBook(index)
    rulebook.ready.set()
    topic = FakeTopic(rulebook, lagging=lagging)
    return AutomationStore(settings, index, rulebook, topic), topic


def run(coro: Any) -> Any:
    """Run a coroutine to completion."""
    return asyncio.run(coro)


def test_create_then_conflict_then_unchanged_put_writes_once() -> None:
    """409 for a second create; an identical PUT is not written."""
    automations, topic = store()
    created = run(automations.create(webhook_automation("s1")))
    assert (created.outcome, created.automation.revision, created.applied) == ("created", 1, True)
    with pytest.raises(ApiError) as caught:
        run(automations.create(webhook_automation("s1")))
    assert caught.value.status == 409
    same = run(automations.replace("s1", webhook_automation("s1")))
    assert same.outcome == "unchanged"
    assert len(topic.writes) == 1


def test_patch_and_delete_of_unknown_ids_are_404() -> None:
    """Nothing is written for an unknown id."""
    automations, topic = store()
    for call in (automations.patch("nope", {"enabled": False}), automations.delete("nope")):
        with pytest.raises(ApiError) as caught:
            run(call)
        assert caught.value.status == 404
    assert topic.writes == []


def test_a_write_not_read_back_in_time_is_flagged_not_lost() -> None:
    """The bounded wait ends; the write stands and applied is False."""
    automations, topic = store(lagging=True, wait=0.05)
    result = run(automations.create(webhook_automation("slow")))
    assert (result.outcome, result.applied) == ("created", False)
    assert topic.writes[0].key == b"slow"


def test_loading_rule_book_answers_503() -> None:
    """Until the topic has been read once, the state is unknown."""
    automations, _ = store()
    automations._rulebook.ready.clear()
    with pytest.raises(ApiError) as caught:
        automations.ensure_loaded()
    assert caught.value.status == 503
