"""A real Prometheus server (Debian's package): run_prometheus and query work, relabelling holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import (
    free_port,
    kubernetes_config_without_sd,
    query,
    query_until,
    run_prometheus,
    targets,
)

SELF_SCRAPE = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@pytest.mark.timeout(120)
def test_prometheus_scrapes_itself(tmp_path: Path) -> None:
    """Prometheus started by run_prometheus scrapes itself; `up` is 1; the process ends after."""
    port = free_port()
    with run_prometheus(SELF_SCRAPE.format(port=port), port, tmp_path) as server:
        result = query_until(port, 'up{job="prometheus"}', timeout=30)
        assert result, f"no `up` sample within 30s:\n{server.log_tail()}"
        (sample,) = result
        assert sample["metric"]["instance"] == f"127.0.0.1:{port}"
        assert sample["value"][1] == "1"
        assert query(port, "vector(42)")[0]["value"][1] == "42"
    assert server.process.poll() is not None


def _pod(
    address: str, component: str, port: str, *, scrape: str = "true", dispatcher: str | None = None
) -> dict[str, str]:
    labels = {
        "__address__": address,
        "__meta_kubernetes_namespace": "hookstream",
        "__meta_kubernetes_pod_name": f"hookstream-{component}-abc",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "hookstream",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
        "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
    }
    if dispatcher:
        labels["__meta_kubernetes_pod_label_hookstream_io_dispatcher"] = dispatcher
    return labels


@pytest.mark.timeout(120)
def test_kubernetes_relabelling_gives_the_alert_job_names(tmp_path: Path) -> None:
    """Pods become hookstream-worker / hookstream-dispatcher targets on their annotated port."""
    config = kubernetes_config_without_sd(
        [
            _pod("127.0.0.1", "worker", "1"),
            _pod("127.0.0.2:8080", "dispatcher", "2", dispatcher="webhook"),
            _pod("127.0.0.3", "worker", "3", scrape="false"),
        ]
    )
    config["rule_files"] = []
    port = free_port()
    with run_prometheus(yaml.safe_dump(config), port, tmp_path) as server:
        deadline = time.monotonic() + 30
        # Discovered targets reach the scrape manager a few seconds after start.
        while not (active := targets(port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert active, f"no active target within 30s:\n{server.log_tail()}"
    by_address = {t["labels"]["instance"]: t for t in active}
    assert set(by_address) == {"127.0.0.1:1", "127.0.0.2:2"}
    worker = by_address["127.0.0.1:1"]["labels"]
    assert worker["job"] == "hookstream-worker"
    assert worker["component"] == "worker"
    dispatcher = by_address["127.0.0.2:2"]["labels"]
    assert dispatcher["job"] == "hookstream-dispatcher"
    assert dispatcher["dispatcher"] == "webhook"
    assert by_address["127.0.0.2:2"]["scrapeUrl"] == "http://127.0.0.2:2/metrics"
