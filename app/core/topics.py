"""Where records go: an event's topic and key; one dispatcher's action, retry and state topics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.contract.events import Event
    from app.contract.runs import RunMetricRecord, RunStateRecord
    from app.settings import Settings

__all__ = [
    "DispatchKind",
    "DispatchTopics",
    "dispatch_topics",
    "event_destination",
    "run_destination",
]

DispatchKind = Literal["webhook", "notification"]


def event_destination(settings: Settings, event: Event) -> tuple[str, bytes]:
    """The topic and key of an event: registry-events when it names a registry, else
    artifact-events, keyed by collection path (so one collection stays in order)."""
    topic = settings.event_topic(registry=event.is_registry_event)
    return topic, event.collection_path.encode()


def run_destination(
    settings: Settings, record: RunMetricRecord | RunStateRecord
) -> tuple[str, bytes]:
    """The topic and key of a run record: run-events, keyed by run path (one run's
    records in order, beside its window state)."""
    return settings.run_events_topic, record.run_path.encode()


@dataclass(frozen=True, slots=True)
class DispatchTopics:
    """Every topic one dispatcher kind reads or writes."""

    kind: DispatchKind
    action: str
    retries: dict[str, float]  # retry topic -> tier seconds, smallest tier first
    dedup: str
    gone: str
    results: str
    dlq: str

    @property
    def consumed(self) -> list[str]:
        """Topics of the consumer group: the action topic and every retry tier."""
        return [self.action, *self.retries]

    def retry_topic(self, tier_seconds: float) -> str:
        """The retry topic of one tier."""
        for name, tier in self.retries.items():
            if tier == tier_seconds:
                return name
        raise KeyError(tier_seconds)


def dispatch_topics(settings: Settings, kind: DispatchKind) -> DispatchTopics:
    """The topics of a `webhook` or `notification` dispatcher, from settings."""
    action = settings.webhook_topic if kind == "webhook" else settings.notification_topic
    d = settings.dispatch
    return DispatchTopics(
        kind=kind,
        action=action,
        retries={d.retry_topic(action, t): t for t in d.retry_tiers_seconds},
        dedup=action + d.dedup_topic_suffix,
        gone=action + d.gone_topic_suffix,
        results=settings.action_results_topic,
        dlq=settings.actions_dlq_topic,
    )
