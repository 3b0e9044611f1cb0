"""Dry-run explanations: why an automation does or does not fire for one event.

The worker never calls this: it matches through AutomationIndex (app.core.matching).
The API's dry runs (app.api.dryrun) list every reason an event is not matched:
disabled, wrong event type, each scope mismatch (app.core.scopes), each filter
condition that fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.contract.automations import Automation
from app.contract.events import Event
from app.core.documents import filter_document
from app.core.matching import CompiledAutomation
from app.core.scopes import scope_mismatches

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Whether an automation fires for an event, and every reason why not."""

    automation_id: str
    matched: bool
    reasons: list[str] = field(default_factory=list)


def explain(
    target: CompiledAutomation | Automation, event: Event, doc: Mapping[str, Any] | None = None
) -> Explanation:
    """Why an automation does or does not fire for an event (for dry runs)."""
    compiled = target if isinstance(target, CompiledAutomation) else CompiledAutomation(target)
    automation = compiled.automation
    reasons: list[str] = []
    if not automation.enabled:
        reasons.append("automation is disabled")
    if automation.event is not event.event_type:
        reasons.append(
            f"event type is {event.event_type.value} but the automation listens for "
            f"{automation.event.value}"
        )
    reasons.extend(scope_mismatches(automation.scope, event))
    if doc is None:
        doc = filter_document(event)
    reasons.extend(compiled.filter.explain(doc))
    return Explanation(automation.id, not reasons, reasons)
