"""Slack notifications: message format per severity, link, escaping, delivery via channel secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.contract.results import ErrorKind
from app.dispatch.deliver import deliver
from app.dispatch.delivery_errors import InvalidJobError
from app.dispatch.http import WebhookSender
from app.dispatch.retry import Verdict, classify
from app.dispatch.secrets import SecretResolver
from app.dispatch.slack import artifact_url, build_slack_message
from app.serialization import loads
from tests.unit.dispatch.fakes import Receiver

EVENT: dict[str, Any] = {
    "event_id": "ev-1",
    "event_type": "ADD_ARTIFACT_ALIAS",
    "occurred_at": "2026-11-26T10:00:00Z",
    "entity": "acme",
    "project": "vision",
    "artifact": {"collection": "mnist", "type": "model", "version": 3},
    "alias": "production",
}
TEMPLATE = (
    "https://wandb.ai/${entity_name}/${project_name}/artifacts/${artifact_type}/"
    "${artifact_collection_name}/${artifact_version}"
)


def note(severity: str | None = "INFO", **action: Any) -> dict[str, Any]:
    """A notification job in the contract's shape."""
    body: dict[str, Any] = {
        "channel": "SLACK_ML_ALERTS",
        "title": "Model promoted",
        "message": "mnist v3 is now production",
    }
    if severity is not None:
        body["severity"] = severity
    body.update(action)
    return {
        "job_id": "job-n1",
        "automation_id": "notify-prod",
        "automation_name": "Notify on prod",
        "event_id": "ev-1",
        "event_type": "ADD_ARTIFACT_ALIAS",
        "action_type": "notification",
        "action": body,
        "event": EVENT,
    }


@pytest.mark.parametrize(
    ("severity", "colour"),
    [("INFO", "#439FE0"), ("WARN", "#DAA038"), ("ERROR", "#A30200"), ("warn", "#DAA038")],
)
def test_colour_by_severity(severity: str, colour: str) -> None:
    """Each severity has its attachment colour and appears in the text."""
    msg = build_slack_message(note(severity))
    (att,) = msg["attachments"]
    assert att["color"] == colour
    assert msg["text"] == f"[{severity.upper()}] Model promoted"


def test_missing_or_unknown_severity_is_info() -> None:
    """No or an unknown severity renders as INFO."""
    assert build_slack_message(note(None))["attachments"][0]["color"] == "#439FE0"
    assert build_slack_message(note("LOUD"))["attachments"][0]["color"] == "#439FE0"


def test_plain_artifact_text_without_template() -> None:
    """Without a link template the artifact version string is plain text, no title link."""
    att = build_slack_message(note())["attachments"][0]
    assert att["title"] == "Model promoted"
    assert att["text"] == "mnist v3 is now production"
    assert {"title": "Artifact", "value": "acme/vision/mnist:v3", "short": False} in att["fields"]
    assert "title_link" not in att
    assert att["ts"] == 1795687200
    assert att["footer"] == "Hookstream · Notify on prod"


def test_link_with_template() -> None:
    """With a template the artifact field and the title link point at the version."""
    att = build_slack_message(note(), artifact_url_template=TEMPLATE)["attachments"][0]
    url = "https://wandb.ai/acme/vision/artifacts/model/mnist/v3"
    assert att["title_link"] == url
    assert {"title": "Artifact", "value": f"<{url}|acme/vision/mnist:v3>", "short": False} in (
        att["fields"]
    )


def test_link_values_are_url_quoted() -> None:
    """Event values cannot break out of the URL path."""
    event = {**EVENT, "artifact": {**EVENT["artifact"], "collection": "a/b|c>"}}
    assert artifact_url(event, TEMPLATE) == (
        "https://wandb.ai/acme/vision/artifacts/model/a%2Fb%7Cc%3E/v3"
    )


def test_control_characters_are_escaped() -> None:
    """<!channel> and & in job text are escaped so they cannot ping or link."""
    att = build_slack_message(note(title="<!channel> & co", message="see <http://x|y>"))[
        "attachments"
    ][0]
    assert att["title"] == "&lt;!channel&gt; &amp; co"
    assert att["text"] == "see &lt;http://x|y&gt;"


def test_job_without_action_is_invalid() -> None:
    """A job with no action object is refused."""
    with pytest.raises(InvalidJobError):
        build_slack_message({"job_id": "x"})


@pytest.fixture
def slack_secrets(receiver: Receiver, secrets_dir: Path) -> SecretResolver:
    """The channel secret holds the (local) incoming-webhook URL."""
    (secrets_dir / "SLACK_ML_ALERTS").write_text(receiver.url("/services/T1/B1/xyz") + "\n")
    return SecretResolver(secrets_dir=secrets_dir, environ={})


async def test_delivery_posts_to_channel_url(
    receiver: Receiver, sender: WebhookSender, slack_secrets: SecretResolver
) -> None:
    """deliver() posts the message JSON to the URL held by the channel's secret."""
    outcome = await deliver(note("ERROR"), sender, slack_secrets)
    assert outcome.ok
    (req,) = receiver.requests
    assert req.path == "/services/T1/B1/xyz"
    assert req.headers["Content-Type"] == "application/json"
    assert loads(req.body)["attachments"][0]["color"] == "#A30200"


async def test_archived_channel_is_gone(
    receiver: Receiver, sender: WebhookSender, slack_secrets: SecretResolver
) -> None:
    """Slack's 410 channel_is_archived classifies as GONE."""

    async def archived(_: web.Request) -> web.StreamResponse:
        return web.Response(status=410, text="channel_is_archived")

    receiver.handler = archived
    outcome = await deliver(note(), sender, slack_secrets)
    assert classify(outcome) is Verdict.GONE
    assert outcome.response_body == "channel_is_archived"


async def test_missing_channel_secret(sender: WebhookSender, receiver: Receiver) -> None:
    """An unconfigured channel fails with the secret reason and posts nothing."""
    outcome = await deliver(note(), sender, SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.SECRET
    assert outcome.error == "secret 'SLACK_ML_ALERTS' is not configured"
    assert receiver.requests == []


async def test_error_text_never_shows_channel_url(sender: WebhookSender, secrets_dir: Path) -> None:
    """A refused Slack URL's path (the credential) is not in the error text."""
    (secrets_dir / "SLACK_ML_ALERTS").write_text("https://10.0.0.7/services/T1/B1/SECRETPART")
    outcome = await deliver(note(), sender, SecretResolver(secrets_dir=secrets_dir, environ={}))
    assert outcome.error_kind is ErrorKind.BLOCKED
    assert outcome.error is not None
    assert "SECRETPART" not in outcome.error


async def test_unknown_action_type_is_invalid(sender: WebhookSender) -> None:
    """deliver() refuses action types that are not HTTP deliveries."""
    outcome = await deliver({"action_type": "queue_job"}, sender, SecretResolver(environ={}))
    assert outcome.error_kind is ErrorKind.INVALID_JOB


def test_run_jobs_name_the_run_not_an_artifact() -> None:
    """A run job's message has a Run field (path and name) and no Artifact field."""
    run_event = {
        "event_type": "RUN_STATE",
        "occurred_at": "2026-11-26T10:00:00Z",
        "entity": "acme",
        "project": "mnist",
        "run": {"id": "1x2y3z", "name": "bright <sun>"},
        "state": "failed",
    }
    job = {**note(), "event_type": "RUN_STATE", "event": run_event}
    fields = build_slack_message(job, artifact_url_template=TEMPLATE)["attachments"][0]["fields"]
    titles = [f["title"] for f in fields]
    assert "Artifact" not in titles
    assert {"title": "Run", "value": "acme/mnist/1x2y3z (bright &lt;sun&gt;)", "short": False} in (
        fields
    )
    assert "Run" not in [
        f["title"] for f in build_slack_message(note())["attachments"][0]["fields"]
    ]
