"""Metrics end to end: real scrapes of a worker and a dispatcher, and a real Prometheus."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

from aiohttp import web

from app import serialization
from app.contract.automations import Automation, parse_automation
from app.kafka.admin import dispatch_topic_specs, ensure_topics
from app.kafka.automations import apply_automations
from app.kafka.clients import produce
from app.settings import Settings
from tests.deploy.tools import (
    dashboard_exprs,
    free_port,
    metric_names,
    query_until,
    render_grafana_expr,
    rule_exprs,
    run_prometheus,
)
from tests.factories import event_dict
from tests.integration.dispatch_support import DispatcherProcess, Receiver
from tests.integration.harness import WorkerProcess
from tests.support import dispatch_test_settings

# The dashboard's main panels; each must return data from a live run.
MAIN_QUERIES = (
    "sum(rate(hookstream_events_consumed_total[1m]))",
    "sum by (action_type) (rate(hookstream_jobs_emitted_total[1m]))",
    "histogram_quantile(0.99, sum by (le, action_type) "
    "(rate(hookstream_event_to_job_seconds_bucket[1m])))",
    "min(hookstream_automations_loaded)",
    "max(hookstream_consumer_lag_messages)",
    "sum by (topic) (hookstream_dead_letters_total)",
    "sum by (action_type, outcome) (hookstream_deliveries_total)",
    'up{job=~"hookstream-.*"}',
)


def queried_metric_names() -> set[str]:
    """Every hookstream_* metric the dashboard and the alert rules query."""
    names: set[str] = set()
    for _, expr in [*dashboard_exprs(), *rule_exprs()]:
        names |= metric_names(render_grafana_expr(expr))
    return names


def scrape(url: str) -> str:
    """The text of a /metrics page."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read()).decode()


def sampled(text: str) -> set[str]:
    """Metric family names that have at least one sample line in a scrape."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for suffix in ("_bucket", "_sum", "_count", "_created"):
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
            names.add(name)
    return names


async def _bad_request(request: web.Request, count: int) -> web.StreamResponse:
    """A handler that always answers 400."""
    return web.Response(status=400, text="no")


def _automations(receiver: Receiver) -> list[Automation]:
    """Webhook automations on CREATE_ARTIFACT posting to the receiver's /ok and /fail."""
    base = {
        "event": "CREATE_ARTIFACT",
        "scope": {
            "type": "artifact_collection",
            "entity": "acme",
            "project": "vision",
            "collection": "mnist",
        },
    }
    return [
        parse_automation(
            {
                **base,
                "id": f"hook-{path.strip('/')}",
                "name": path,
                "action": {
                    "type": "webhook",
                    "url": receiver.url(path),
                    "payload": '{"v": "${artifact_version}"}',
                },
            }
        )
        for path in ("/ok", "/fail")
    ]


async def test_dashboard_and_alert_metrics_are_scraped_and_queried_by_a_real_prometheus(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """Every metric the dashboard and alerts use has samples; Prometheus answers the panels."""
    settings: Settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path, max_attempts=1)
    await ensure_topics(settings, dispatch_topic_specs(settings))
    receiver = await Receiver(handlers={"/fail": _bad_request}).start()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    dispatcher = DispatcherProcess(
        settings.model_copy(update={"web_port": free_port()}), "webhook", tmp_path / "dispatch.log"
    )
    try:
        await apply_automations(settings, _automations(receiver))
        await asyncio.to_thread(worker.start)
        await dispatcher.start()
        events = [
            event_dict(
                event_id=f"obs-{i}",
                event_type="CREATE_ARTIFACT",
                project="vision",
                registry=None,
                artifact={"collection": "mnist", "version": i},
            )
            for i in range(3)
        ]
        records: list[tuple[bytes | None, bytes | None]] = [
            (b"acme/vision/mnist", serialization.dumps(e)) for e in events
        ]
        records.append((None, b"not json"))
        await produce(kafka_bootstrap, settings.artifact_events_topic, records)
        await receiver.wait_for(
            lambda: len(receiver.on("/ok")) >= 3 and len(receiver.on("/fail")) >= 3, 60
        )

        wanted = queried_metric_names()
        worker_url = f"{worker.url}/metrics"
        dispatcher_url = dispatcher.url("/metrics")
        deadline = time.monotonic() + 45
        missing = wanted
        while missing and time.monotonic() < deadline:
            have = sampled(await asyncio.to_thread(scrape, worker_url))
            have |= sampled(await asyncio.to_thread(scrape, dispatcher_url))
            missing = wanted - have
            await asyncio.sleep(1.0)
        assert not missing, f"queried but never sampled: {sorted(missing)}"

        config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: hookstream-worker
    static_configs: [{{targets: ["127.0.0.1:{worker.settings.web_port}"]}}]
  - job_name: hookstream-dispatcher
    static_configs: [{{targets: ["127.0.0.1:{dispatcher.settings.web_port}"]}}]
"""
        port = free_port()
        with run_prometheus(config, port, tmp_path / "prometheus") as prom:
            # Traffic keeps flowing so rate() has two samples with a difference.
            for i in range(3, 8):
                event = event_dict(
                    event_id=f"obs-{i}",
                    event_type="CREATE_ARTIFACT",
                    project="vision",
                    registry=None,
                    artifact={"collection": "mnist", "version": i},
                )
                await produce(
                    kafka_bootstrap,
                    settings.artifact_events_topic,
                    [(b"acme/vision/mnist", serialization.dumps(event))],
                )
                await asyncio.sleep(1.0)
            for promql in MAIN_QUERIES:
                result = await asyncio.to_thread(query_until, prom.port, promql, timeout=30)
                assert result, f"no data for {promql}\n{prom.log_tail()}"
    finally:
        await dispatcher.stop()
        await asyncio.to_thread(worker.stop)
        await receiver.close()
