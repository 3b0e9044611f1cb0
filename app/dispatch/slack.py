"""Slack notifications: a notification job becomes an incoming-webhook message."""

# Channel mapping: a job's `channel` is the NAME of a secret whose value is the Slack
# incoming-webhook URL (`https://hooks.slack.com/services/...`). The URL itself is a
# credential (whoever has it can post), so it lives in the dispatcher's secret source
# like any other secret and never travels in a job. Any Slack-compatible endpoint
# (Mattermost, Rocket.Chat, Discord's `/slack` URL) works the same way; the network
# policy applies as for webhooks. Delivery goes through the same WebhookSender and
# retry policy (Slack answers 429 with Retry-After, 410 for an archived channel).
#
# Message: top-level `text` (what notifications and screen readers show) plus one
# attachment with the severity colour, title, message, artifact version and event
# type. Slack's control characters `& < >` in job text are escaped, so event data
# cannot inject mentions such as `<!channel>` or links; *bold* and _italic_ still work.

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from app.contract.results import ErrorKind
from app.dispatch.delivery_errors import InvalidJobError, SecretNotConfiguredError
from app.dispatch.http import USER_AGENT, PreparedRequest, WebhookSender, failed_outcome
from app.dispatch.outcome import AttemptOutcome
from app.dispatch.secrets import SecretResolver
from app.serialization import dumps

__all__ = [
    "SEVERITY_COLOURS",
    "artifact_url",
    "artifact_version_string",
    "build_slack_message",
    "prepare_notification",
    "run_text",
    "send_notification",
]

#: Attachment colours: Slack's own "good/warning/danger" palette, blue for INFO.
SEVERITY_COLOURS: dict[str, str] = {"INFO": "#439FE0", "WARN": "#DAA038", "ERROR": "#A30200"}

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _escape(text: str) -> str:
    """Escape Slack's control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _str(mapping: Mapping[str, Any], key: str) -> str:
    """A field as text ('' when absent); numbers are written as is."""
    value = mapping.get(key)
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _variables(event: Mapping[str, Any]) -> dict[str, str]:
    """Template variables of the artifact version an event is about."""
    raw_artifact = event.get("artifact")
    artifact: Mapping[str, Any] = raw_artifact if isinstance(raw_artifact, Mapping) else {}
    version = artifact.get("version")
    is_index = isinstance(version, int) and not isinstance(version, bool)
    version_text = f"v{version}" if is_index else ""
    entity, project = _str(event, "entity"), _str(event, "project")
    collection = _str(artifact, "collection")
    version_string = ""
    if entity and project and collection:
        version_string = f"{entity}/{project}/{collection}"
        if version_text:
            version_string += f":{version_text}"
    return {
        "entity_name": entity,
        "project_name": project,
        "registry_name": _str(event, "registry"),
        "artifact_collection_name": collection,
        "artifact_type": _str(artifact, "type"),
        "artifact_version": version_text,
        "artifact_version_string": version_string,
    }


def artifact_version_string(event: Mapping[str, Any]) -> str:
    """`entity/project/collection:v3` of an event ('' if the event lacks the parts)."""
    return _variables(event)["artifact_version_string"]


def artifact_url(event: Mapping[str, Any], template: str | None) -> str | None:
    """The artifact version's link from the configured template (values URL-quoted)."""
    if template is None:
        return None
    values = _variables(event)
    if not values["artifact_version_string"]:
        return None
    return _VARIABLE.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), template)


def run_text(event: Mapping[str, Any]) -> str:
    """`entity/project/run_id (name)` of a run record ('' for an artifact event)."""
    raw_run = event.get("run")
    if not isinstance(raw_run, Mapping):
        return ""
    run_id = _str(raw_run, "id")
    entity, project = _str(event, "entity"), _str(event, "project")
    if not (run_id and entity and project):
        return ""
    name = _str(raw_run, "name")
    text = f"{entity}/{project}/{run_id}"
    return f"{text} ({name})" if name else text


def _epoch(value: object) -> int | None:
    """Unix seconds of an RFC 3339 timestamp, or None."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def build_slack_message(
    job: Mapping[str, Any], *, artifact_url_template: str | None = None
) -> dict[str, Any]:
    """The incoming-webhook JSON for a notification job."""
    action = job.get("action")
    if not isinstance(action, Mapping):
        raise InvalidJobError("the job has no action object")
    raw_event = job.get("event")
    event: Mapping[str, Any] = raw_event if isinstance(raw_event, Mapping) else {}
    severity = _str(action, "severity").upper() or "INFO"
    if severity not in SEVERITY_COLOURS:
        severity = "INFO"
    title = _escape(_str(action, "title"))
    message = _escape(_str(action, "message"))
    version_string = _escape(artifact_version_string(event))
    link = artifact_url(event, artifact_url_template)
    fields: list[dict[str, Any]] = []
    if version_string:
        value = f"<{link}|{version_string}>" if link else version_string
        fields.append({"title": "Artifact", "value": value, "short": False})
    run = _escape(run_text(event))
    if run:
        fields.append({"title": "Run", "value": run, "short": False})
    event_type = _escape(_str(job, "event_type") or _str(event, "event_type"))
    if event_type:
        fields.append({"title": "Event", "value": event_type, "short": True})
    fields.append({"title": "Severity", "value": severity, "short": True})
    attachment: dict[str, Any] = {
        "color": SEVERITY_COLOURS[severity],
        "fallback": f"[{severity}] {title}",
        "title": title,
        "text": message,
        "fields": fields,
        "footer": _escape(
            "Hookstream · " + (_str(job, "automation_name") or _str(job, "automation_id"))
        ),
        "mrkdwn_in": ["text"],
    }
    if link:
        attachment["title_link"] = link
    ts = _epoch(event.get("occurred_at"))
    if ts is not None:
        attachment["ts"] = ts
    return {"text": f"[{severity}] {title}", "attachments": [attachment]}


def prepare_notification(
    job: Mapping[str, Any], secrets: SecretResolver, *, artifact_url_template: str | None = None
) -> PreparedRequest:
    """The POST of a notification job to the webhook URL held by the `channel` secret."""
    action = job.get("action")
    if not isinstance(action, Mapping):
        raise InvalidJobError("the job has no action object")
    channel = action.get("channel")
    if not isinstance(channel, str) or not channel:
        raise InvalidJobError("the notification has no channel")
    url = secrets.resolve(SecretResolver.check_name(channel)).get_secret_value()
    body = dumps(build_slack_message(job, artifact_url_template=artifact_url_template))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    return PreparedRequest(url=url, body=body, headers=headers)


async def send_notification(
    sender: WebhookSender, job: Mapping[str, Any], secrets: SecretResolver
) -> AttemptOutcome:
    """One attempt of a notification job through the shared sender."""
    at = sender.now()
    try:
        request = prepare_notification(
            job, secrets, artifact_url_template=sender.settings.artifact_url_template
        )
    except SecretNotConfiguredError as exc:
        return failed_outcome(ErrorKind.SECRET, exc.reason, at)
    except InvalidJobError as exc:
        return failed_outcome(ErrorKind.INVALID_JOB, exc.reason, at)
    return await sender.post(request, at=at)
