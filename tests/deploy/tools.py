"""Helpers of the deployment tests: promtool and Prometheus, PromQL metric names, manifests."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "COMPOSE",
    "DASHBOARD",
    "DEPLOY",
    "K8S",
    "PROMETHEUS_DIR",
    "ROOT",
    "PrometheusProcess",
    "dashboard_exprs",
    "defined_metric_names",
    "find_prometheus",
    "find_promtool",
    "find_tool",
    "free_port",
    "kubernetes_config_without_sd",
    "load_yaml_documents",
    "metric_names",
    "query",
    "query_until",
    "render_grafana_expr",
    "rule_exprs",
    "run_prometheus",
    "targets",
]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "hookstream.json"

_METRIC = re.compile(r"\bhookstream_[a-z_]+")
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_tool(name: str) -> str:
    """The path of an installed tool; in CI a missing one fails the test, elsewhere it skips.

    Tests never install anything: `make test-tools` (run by `make test`, so by `.ci/run`)
    installs Debian's prometheus package, which holds promtool and prometheus.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"`{name}` is not installed: `make test-tools` installs Debian's prometheus package"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


def find_promtool() -> str:
    """The path of promtool (see find_tool)."""
    return find_tool("promtool")


def find_prometheus() -> str:
    """The path of the prometheus server binary (same package as promtool)."""
    return find_tool("prometheus")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusProcess:
    """A running Prometheus server started by run_prometheus."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def run_prometheus(
    config_text: str, port: int, data_dir: Path, *, ready_timeout: float = 30.0
) -> Iterator[PrometheusProcess]:
    """Run `prometheus` on 127.0.0.1:<port> with this config; always terminated on exit."""
    binary = find_prometheus()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "prometheus.yml"
    config.write_text(config_text)
    log_path = data_dir / "prometheus.log"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir,
        )
    server = PrometheusProcess(process, port, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _http_ok(f"{server.url}/-/ready", timeout=2.0):
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {process.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus not ready within {ready_timeout}s:\n{server.log_tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _api_get(port: int, path: str, params: dict[str, str], timeout: float) -> Any:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{path} failed: {body}")
    return body["data"]


def query(port: int, promql: str, *, timeout: float = 10.0) -> list[Any]:
    """Instant query against /api/v1/query: the `result` list (a vector's samples)."""
    data = _api_get(port, "/api/v1/query", {"query": promql}, timeout)
    result = data["result"]
    if data.get("resultType") in ("scalar", "string"):
        return [result]
    return list(result)


def query_until(
    port: int, promql: str, *, timeout: float = 30.0, interval: float = 0.5
) -> list[Any]:
    """Repeat `query` until it returns a non-empty result; [] once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(port, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def targets(port: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The active scrape targets (/api/v1/targets)."""
    data = _api_get(port, "/api/v1/targets", {"state": "active"}, timeout)
    return list(data["activeTargets"])


# --- PromQL and metric names ----------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Hookstream metric names a PromQL expression reads (histogram series suffixes stripped)."""
    names = set()
    for name in _METRIC.findall(expr):
        for suffix in _SERIES_SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


def defined_metric_names() -> set[str]:
    """Names WorkerMetrics and DispatchMetrics register, as queried (counters with _total)."""
    from prometheus_client import CollectorRegistry

    from app.dispatch.metrics import DispatchMetrics
    from app.stream.metrics import WorkerMetrics

    names: set[str] = set()
    for metrics_class in (WorkerMetrics, DispatchMetrics):
        registry = CollectorRegistry()
        metrics_class(registry)
        for family in registry.collect():
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def render_grafana_expr(expr: str, rate_interval: str = "1m") -> str:
    """A dashboard expression with Grafana's variables replaced, ready for Prometheus."""
    for variable in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}"):
        expr = expr.replace(variable, rate_interval)
    return expr.replace("$__range", "1h").replace("${__range}", "1h")


def dashboard_exprs(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard, rows' nested panels included."""
    dashboard = json.loads(path.read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((str(panel.get("title", "")), str(target["expr"])))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    return found


def rule_exprs(path: Path = PROMETHEUS_DIR / "alerts.yml") -> list[tuple[str, str]]:
    """(alert or record name, expr) of every rule of a Prometheus rules file."""
    document = yaml.safe_load(path.read_text())
    return [
        (str(rule.get("alert") or rule.get("record")), str(rule["expr"]))
        for group in document["groups"]
        for rule in group["rules"]
    ]


def load_yaml_documents(path: Path) -> list[Any]:
    """Every YAML document of a file (multi-document manifests), empty ones dropped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kubernetes_config_without_sd(labels_per_target: list[dict[str, str]]) -> dict[str, Any]:
    """deploy/prometheus/kubernetes.yml with its pod discovery replaced by static targets.

    Debian's Prometheus is built without Kubernetes discovery; the relabelling, which is the
    part that decides job names and addresses, is kept as is.
    """
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
    job["static_configs"] = [
        {"targets": [labels.pop("__address__")], "labels": labels}
        for labels in (dict(item) for item in labels_per_target)
    ]
    return config
