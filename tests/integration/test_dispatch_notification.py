"""`hookstream dispatch notification`: Slack messages through the same delivery machinery."""

from __future__ import annotations

from pathlib import Path

from app import serialization
from tests.integration.dispatch_support import (
    Receiver,
    dispatcher,
    make_job,
    produce_jobs,
)
from tests.support import dispatch_test_settings, read_back


async def test_notification_posts_slack_message(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """A notification job becomes an incoming-webhook message with severity colour and link."""
    receiver = await Receiver().start()
    settings = dispatch_test_settings(
        kafka_bootstrap,
        uid,
        tmp_path,
        artifact_url_template="https://wandb.ai/${entity_name}/${project_name}/artifacts/"
        "${artifact_type}/${artifact_collection_name}/${artifact_version}",
    )
    job = make_job("unused", automation_id="notify-prod")
    job["action_type"] = "notification"
    job["action"] = {
        "channel": "ML_ALERTS",
        "title": "Promoted <v3>",
        "message": "by *alice*",
        "severity": "ERROR",
    }
    job["event"] = {
        "event_type": "ADD_ARTIFACT_ALIAS",
        "entity": "acme",
        "project": "vision",
        "artifact": {"collection": "mnist", "type": "model", "version": 3},
    }
    env = {"HOOKSTREAM_SECRET_ML_ALERTS": receiver.url("/services/T0/B0/xyz")}
    try:
        async with dispatcher(settings, "notification", environ=env):
            results = await read_back(settings, settings.action_results_topic)
            try:
                await produce_jobs(settings, settings.notification_topic, [job])
                values = await results.until(lambda v: any(r["final"] for r in v))
            finally:
                await results.aclose()
    finally:
        await receiver.close()
    assert values[-1]["status"] == "FINISHED"
    assert values[-1]["action_type"] == "notification"
    (hit,) = receiver.hits
    message = serialization.loads(hit.body)
    attachment = message["attachments"][0]
    assert attachment["color"] == "#A30200"
    assert attachment["title"] == "Promoted &lt;v3&gt;"
    assert attachment["title_link"] == "https://wandb.ai/acme/vision/artifacts/model/mnist/v3"
    assert message["text"] == "[ERROR] Promoted &lt;v3&gt;"
