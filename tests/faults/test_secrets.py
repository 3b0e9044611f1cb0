"""Scenario 6: secret VALUES never leave the environment they were put in.

A worker runs with secret values in its environment (`HOOKSTREAM_SECRET_*`, the API
token) and automations that name those secrets; events flow, good and bad, and an
automation record tries to reach a secret through a template. Then the worker's whole
log, every record of every topic this test created (changelogs and Faust's internal
topics included, dead-letter originals decoded) and the web endpoints are searched for
the values: zero hits. The secret NAMES do appear in the jobs, so the search is live.

API auth on mutating routes and webhook target checks are other suites' concern
(tests/integration/test_api*.py, tests/unit/dispatch/test_netguard.py).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from app.contract.automations import parse_automation
from app.core.stored import stamp
from app.kafka.clients import produce, read_to_end
from app.serialization import dumps, loads
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    FaultWorker,
    apply,
    expected_jobs,
    job_id_of,
    records_of,
    workload,
)
from tests.support import TopicReader

EVENTS = 400


async def _topics_of(bootstrap: str, uid: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if uid in t)
    finally:
        await admin.close()


def every_record(bootstrap: str, uid: str) -> dict[str, list[bytes]]:
    """Keys, values and headers of every record of every topic named after this test."""
    out: dict[str, list[bytes]] = {}
    for topic in asyncio.run(_topics_of(bootstrap, uid)):
        blobs: list[bytes] = []
        for record in asyncio.run(read_to_end(bootstrap, topic)):
            blobs.extend(part for part in (record.key, record.value) if part)
            blobs.extend(value for _, value in record.headers or () if value)
        out[topic] = blobs
    return out


def decoded(blob: bytes) -> list[bytes]:
    """A record plus every base64 field inside it (dead letters keep originals encoded)."""
    found = [blob]
    try:
        data = loads(blob)
    except ValueError:
        return found
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key.endswith("_b64") and isinstance(value, str):
                    found.append(base64.b64decode(value))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def secret_automations(uid: str) -> list[dict[str, Any]]:
    """Automations naming secrets (the names only, as the contract says)."""
    registry = {"type": "registry", "entity": "acme", "registry": "model"}
    return [
        {
            "id": "deploy-with-secrets",
            "name": "deploy, signed with DEPLOY, token DEPLOY_TOKEN",
            "description": "uses HOOKSTREAM_SECRET_DEPLOY via its name",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "action": {
                "type": "webhook",
                "url": "https://ci.example.com/hooks/deploy",
                "payload": '{"model": "${artifact_version_string}", "secret": "DEPLOY"}',
                "headers": {"X-Secret-Name": "DEPLOY", "X-Event": "${event_id}"},
                "secret": "DEPLOY",
                "access_token": "DEPLOY_TOKEN",
            },
        },
        {
            "id": "notify-with-secret-name",
            "name": "notify",
            "event": "LINK_ARTIFACT",
            "scope": registry,
            "action": {
                "type": "notification",
                "channel": "DEPLOY",
                "title": "${artifact_version_string}",
                "message": "secret DEPLOY_TOKEN is configured",
            },
        },
    ]


def test_secret_values_never_reach_logs_jobs_dead_letters_or_metrics(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Search the whole run's output for the secret values: zero hits; the names are there."""
    settings = fault_settings
    values = {
        "HOOKSTREAM_SECRET_DEPLOY": f"s3cr3t-value-{uuid.uuid4().hex}",
        "HOOKSTREAM_SECRET_DEPLOY_TOKEN": f"t0ken-value-{uuid.uuid4().hex}",
        "HOOKSTREAM_API_TOKEN": f"api-t0ken-{uuid.uuid4().hex}",
    }
    automations = [stamp(parse_automation(spec), None) for spec in secret_automations(uid)]
    apply(settings, automations)
    base = secret_automations(uid)[0]
    # Written around the API: a template naming secrets (refused by every worker) and a
    # URL spelling an environment variable (accepted: URLs are never expanded).
    template_try = {
        **base,
        "id": "exfiltrate-template",
        "action": {
            **base["action"],
            "payload": '{"s": "${secret.DEPLOY}", "e": "${env.HOOKSTREAM_SECRET_DEPLOY}"}',
        },
    }
    url_try = {
        **base,
        "id": "exfiltrate-url",
        "action": {**base["action"], "url": "https://ci.example.com/${HOOKSTREAM_API_TOKEN}"},
    }
    asyncio.run(
        produce(
            settings.kafka_bootstrap_servers,
            settings.automations_topic,
            [(spec["id"].encode(), dumps(spec)) for spec in (template_try, url_try)],
        )
    )
    events = workload(EVENTS, prefix=f"secret-{uid}")
    # Positive control: a value planted in an event must be found by the same search.
    canary = f"canary-value-{uuid.uuid4().hex}"
    events[0]["artifact"]["metadata"]["planted"] = canary
    expected = expected_jobs([*automations, parse_automation(url_try)], events, tmp_path)
    wanted = {job.job_id for job in expected}
    topics = [settings.webhook_topic, settings.notification_topic]
    with TopicReader(settings.kafka_bootstrap_servers, topics, key=job_id_of) as reader:
        worker = start_fault_worker(name="secrets", env={**values, "HOOKSTREAM_LOG_LEVEL": "DEBUG"})
        asyncio.run(
            produce(
                settings.kafka_bootstrap_servers,
                settings.registry_events_topic,
                [(key, value) for _, key, value in records_of(settings, events)]
                + [(None, b"not json"), (None, b'{"event_id": "x"}')],
            )
        )
        complete = reader.wait(lambda r: r.has_all(wanted), timeout=120)
        reader.wait(lambda r: False, timeout=1.0)
        missing, jobs_seen = reader.missing(wanted), reader.count()
    pages = {path: worker.get(path) for path in ("/metrics", "/healthz", "/readyz")}
    worker.stop()
    log = worker.log_path.read_bytes()
    records = every_record(settings.kafka_bootstrap_servers, uid)

    haystacks: list[tuple[str, bytes]] = [("worker log", log)]
    haystacks += [(f"GET {path}", body) for path, body in pages.items()]
    haystacks += [
        (f"topic {topic}", part)
        for topic, blobs in records.items()
        for blob in blobs
        for part in decoded(blob)
    ]
    hits = [
        (where, name)
        for where, blob in haystacks
        for name, value in values.items()
        if value.encode() in blob
    ]
    canary_hits = {where for where, blob in haystacks if canary.encode() in blob}
    names_in_jobs = sum(
        1
        for blob in records.get(settings.webhook_topic, [])
        if b'"secret":"DEPLOY"' in blob and b'"access_token":"DEPLOY_TOKEN"' in blob
    )
    fault_report.add(
        "6. secrets",
        events_sent=len(events) + 2,
        jobs_expected=len(expected),
        jobs_seen=jobs_seen,
        lost=len(missing),
        duplicates=jobs_seen - (len(wanted) - len(missing)),
        notes=(
            f"searched {len(log)} log bytes (DEBUG), {sum(len(b) for b in records.values())} "
            f"record keys/values on {len(records)} topics (dead-letter originals decoded), "
            f"{len(pages)} web pages for {len(values)} secret values: {len(hits)} hits"
        ),
    )
    assert complete, "the worker produced every expected job"
    assert len(records) >= 8, f"every topic of the test was read: {sorted(records)}"
    assert records.get(settings.dlq_topic), "the bad events reached the dead letters"
    assert names_in_jobs > 0, "jobs carry the secret NAMES, so the search can find things"
    assert f"topic {settings.webhook_topic}" in canary_hits, "the search finds a planted value"
    assert b"exfiltrate-template" in log, "the hostile automation record was seen and skipped"
    literal_urls = [
        blob
        for blob in records.get(settings.webhook_topic, [])
        if b"/${HOOKSTREAM_API_TOKEN}" in blob
    ]
    assert literal_urls, "a URL spelling a variable is sent as written, never expanded"
    assert hits == [], f"secret values leaked: {hits}"
