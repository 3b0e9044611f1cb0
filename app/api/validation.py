"""What the API checks beyond the model: the same rules for create, update and dry runs."""

from __future__ import annotations

from typing import Any

from app.api.problems import ApiError
from app.contract.automations import Automation, KafkaAction, parse_automation
from app.core.stored import MANAGED_FIELDS
from app.errors import InvalidAutomationError
from app.settings import Settings

__all__ = ["reserved_topic_errors", "validate_automation"]


def reserved_topic_errors(automation: Automation, settings: Settings) -> list[tuple[str, str]]:
    """A kafka action may not write into Hookstream's own topics (loops, corrupted state)."""
    action = automation.action
    if isinstance(action, KafkaAction) and action.topic in settings.reserved_topics:
        return [
            (
                "action.topic",
                f"'{action.topic}' is one of Hookstream's own topics; "
                "a kafka action must write elsewhere",
            )
        ]
    return []


def validate_automation(data: Any, settings: Settings) -> Automation:
    """Parse a request body as an automation; raises ApiError 422 listing every bad field."""
    if not isinstance(data, dict):
        raise ApiError(422, "an automation must be a JSON object", errors=[("", "not an object")])
    # A client's values for the managed fields are ignored, not refused, so that a GET
    # response can be edited and sent back as is.
    fields = {k: v for k, v in data.items() if k not in MANAGED_FIELDS}
    try:
        automation = parse_automation(fields)
    except InvalidAutomationError as exc:
        raise ApiError(422, "invalid automation", errors=exc.errors) from None
    errors = reserved_topic_errors(automation, settings)
    if errors:
        raise ApiError(422, "invalid automation", errors=errors)
    return automation
