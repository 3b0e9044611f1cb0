"""deploy/docker-compose.yml: parses, and its services, ports and mounts fit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import HOOKSTREAM_SERVICES, compose, compose_env
from tests.deploy.tools import COMPOSE, DEPLOY, PROMETHEUS_DIR, ROOT

SECRETS = DEPLOY / "secrets"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The compose services."""
    found: dict[str, Any] = compose()["services"]
    return found


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes skipped)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def _published(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(host port, container port) pairs, bound to 127.0.0.1."""
    pairs = set()
    for item in service.get("ports", []):
        host_ip, host, container = str(item).split(":")
        assert host_ip == "127.0.0.1", f"{item}: publish on 127.0.0.1 only"
        pairs.add((host, container))
    return pairs


def test_compose_parses_with_every_service(services: dict[str, Any]) -> None:
    """The file is YAML with Kafka, one-shots, two workers, two dispatchers, Prometheus, Grafana."""
    assert set(services) == {
        "kafka",
        "topics",
        "apply",
        "worker-1",
        "worker-2",
        "dispatch-webhook",
        "dispatch-notification",
        "prometheus",
        "grafana",
    }


def test_kafka_runs_kraft_on_the_compose_network(services: dict[str, Any]) -> None:
    """apache/kafka:4.1.1, one combined broker+controller, advertised to the compose network."""
    kafka = services["kafka"]
    env = compose_env(kafka)
    assert kafka["image"] == "apache/kafka:4.1.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "kafka:9092"
    for name in HOOKSTREAM_SERVICES:
        assert compose_env(services[name])["KAFKA_BOOTSTRAP_SERVERS"] in advertised.values()
    assert "healthcheck" in kafka


def test_hookstream_services_use_the_image(services: dict[str, Any]) -> None:
    """Every Hookstream service builds deploy/Dockerfile from the repository root."""
    for name in HOOKSTREAM_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
        assert build["dockerfile"] == "deploy/Dockerfile", name


def test_one_shots_create_topics_then_apply(services: dict[str, Any]) -> None:
    """`topics create` runs once after Kafka is healthy; `apply` after it, on the examples."""
    topics, apply = services["topics"], services["apply"]
    assert topics["command"] == ["topics", "create"]
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert apply["restart"] == "no"
    assert apply["command"][:3] == ["automations", "apply", "-f"]
    assert apply["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    container_path = Path(apply["command"][3])
    host_dir = _bind_mounts(apply)[str(container_path.parent)]
    assert host_dir == DEPLOY / "examples"
    assert (host_dir / container_path.name).is_file()


def test_two_workers_share_one_consumer_group(services: dict[str, Any]) -> None:
    """Same app id (one group), different web ports, each published on its own port."""
    workers = [services["worker-1"], services["worker-2"]]
    envs = [compose_env(w) for w in workers]
    assert all(w["command"] == ["worker"] for w in workers)
    assert envs[0]["HOOKSTREAM_APP_ID"] == envs[1]["HOOKSTREAM_APP_ID"]
    ports = [env["HOOKSTREAM_WEB_PORT"] for env in envs]
    assert ports[0] != ports[1]
    for worker, port in zip(workers, ports, strict=True):
        assert _published(worker) == {(port, port)}
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert all(env["HOOKSTREAM_WEB_HOST"] == "0.0.0.0" for env in envs)


@pytest.mark.parametrize(
    ("service", "kind", "port"),
    [("dispatch-webhook", "webhook", "6067"), ("dispatch-notification", "notification", "6068")],
)
def test_dispatchers(services: dict[str, Any], service: str, kind: str, port: str) -> None:
    """`hookstream dispatch <kind>` on its own port, reading secrets from its own folder."""
    dispatcher = services[service]
    env = compose_env(dispatcher)
    assert dispatcher["command"] == ["dispatch", kind]
    assert env["HOOKSTREAM_WEB_PORT"] == port
    assert _published(dispatcher) == {(port, port)}
    mounts = _bind_mounts(dispatcher)
    assert mounts[env["HOOKSTREAM_DISPATCH__SECRETS_DIR"]] == SECRETS / kind
    assert str(dispatcher["volumes"][0]).endswith(":ro")


def test_secret_folders_are_never_committed() -> None:
    """deploy/secrets/ ignores everything but its .gitignore, and is kept out of the image."""
    ignore = (SECRETS / ".gitignore").read_text().split()
    assert "*" in ignore
    assert "!.gitignore" in ignore
    assert "deploy/secrets" in (ROOT / ".dockerignore").read_text().split()


def test_prometheus_scrapes_every_hookstream_process(services: dict[str, Any]) -> None:
    """prometheus.yml targets are exactly the workers and dispatchers at their web ports."""
    expected = {
        f"{name}:{compose_env(services[name])['HOOKSTREAM_WEB_PORT']}"
        for name in ("worker-1", "worker-2", "dispatch-webhook", "dispatch-notification")
    }
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    scraped: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            scraped.setdefault(job["job_name"], set()).update(static["targets"])
    assert scraped["hookstream-worker"] | scraped["hookstream-dispatcher"] == expected
    assert all(t.startswith("worker-") for t in scraped["hookstream-worker"])


def test_prometheus_and_grafana_mounts(services: dict[str, Any]) -> None:
    """Prometheus reads deploy/prometheus; Grafana provisions the mounted dashboards."""
    prometheus = services["prometheus"]
    assert _bind_mounts(prometheus)["/etc/prometheus"] == PROMETHEUS_DIR
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana_mounts = _bind_mounts(services["grafana"])
    provisioning = grafana_mounts["/etc/grafana/provisioning"]
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "hookstream.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert grafana_mounts[dashboards_path] == DEPLOY / "grafana" / "dashboards"
    assert (grafana_mounts[dashboards_path] / "hookstream.json").is_file()
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_bind_mount_sources_exist(services: dict[str, Any]) -> None:
    """Every bind-mounted host path exists (secret folders: their parent, made on demand)."""
    for name, service in services.items():
        for host in _bind_mounts(service).values():
            if host.is_relative_to(SECRETS):
                assert SECRETS.is_dir()
            else:
                assert host.exists(), f"{name}: {host} is missing"
