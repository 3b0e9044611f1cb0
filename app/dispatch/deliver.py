"""One delivery attempt of any dispatchable job, routed by `action_type`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.contract.results import ErrorKind
from app.dispatch.http import WebhookSender, failed_outcome
from app.dispatch.outcome import AttemptOutcome
from app.dispatch.secrets import SecretResolver
from app.dispatch.slack import send_notification

__all__ = ["DELIVERABLE_ACTION_TYPES", "deliver"]

DELIVERABLE_ACTION_TYPES = frozenset({"webhook", "notification"})


async def deliver(
    job: Mapping[str, Any], sender: WebhookSender, secrets: SecretResolver
) -> AttemptOutcome:
    """Make one attempt of a webhook or notification job; never raises for a bad job."""
    action_type = job.get("action_type")
    if action_type == "webhook":
        return await sender.send(job, secrets)
    if action_type == "notification":
        return await send_notification(sender, job, secrets)
    reason = f"action type {action_type!r} is not delivered over HTTP"
    return failed_outcome(ErrorKind.INVALID_JOB, reason, sender.now())
