"""deploy/k8s: manifests parse, kustomize builds, and probes, ports, secrets and selectors agree."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import Container, dockerfile_instructions, k8s_containers, k8s_objects
from tests.deploy.manifests import kustomization as read_kustomization
from tests.deploy.tools import K8S, load_yaml_documents

SECRETS_DIR_ENV = "HOOKSTREAM_DISPATCH__SECRETS_DIR"


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_manifest_parses() -> None:
    """Each YAML file in deploy/k8s parses; each object has apiVersion, kind and a name."""
    files = sorted(K8S.glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        documents = load_yaml_documents(path)
        assert documents, path
        for document in documents:
            assert document.get("apiVersion"), path
            assert document.get("kind"), path
            if document["kind"] != "Kustomization":
                assert document["metadata"]["name"], path


def test_kustomization_lists_existing_files() -> None:
    """Every resource the kustomization lists exists, and every manifest file is listed."""
    resources = read_kustomization()["resources"]
    assert len(resources) == len(set(resources))
    assert all((K8S / name).is_file() for name in resources), resources
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == set(resources)


def test_kustomize_build() -> None:
    """`kubectl kustomize deploy/k8s` renders every object into the hookstream namespace."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build is not checked")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    built = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    kinds = sorted(doc["kind"] for doc in built)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "Deployment",
            "Deployment",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
        ]
    )
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "hookstream", doc["metadata"]["name"]
        if doc["kind"] == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            assert container["image"] == "hookstream:0.1.0"


def test_deployments() -> None:
    """Two worker replicas; a webhook and a notification dispatcher, each its own command."""
    deployments = _by_kind("Deployment")
    assert deployments["hookstream-worker"]["spec"]["replicas"] == 2
    args = {c.name: c.spec["args"] for c in k8s_containers()}
    assert args == {
        "hookstream-worker/worker": ["worker"],
        "hookstream-dispatch-webhook/dispatcher": ["dispatch", "webhook"],
        "hookstream-dispatch-notification/dispatcher": ["dispatch", "notification"],
    }
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert _selects(selector, _pod_labels(deployment)), name


@pytest.mark.parametrize("container", k8s_containers(), ids=lambda c: c.name)
def test_web_port_probes_and_scrape_annotations_agree(container: Container) -> None:
    """HOOKSTREAM_WEB_PORT = containerPort = prometheus.io/port; probes hit /healthz, /readyz."""
    port = int(container.env["HOOKSTREAM_WEB_PORT"])
    (declared,) = container.spec["ports"]
    assert declared["containerPort"] == port
    annotations = container.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container.spec[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in (port, declared["name"]), probe
    assert container.env["HOOKSTREAM_WEB_HOST"] == "0.0.0.0"
    assert {6066: "worker", 6067: "webhook", 6068: "notification"}[port] in container.name


@pytest.mark.parametrize("container", k8s_containers(), ids=lambda c: c.name)
def test_resources_and_security(container: Container) -> None:
    """Requests and limits for CPU and memory; non-root (the image's uid), read-only root."""
    resources = container.spec["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}, bound
    pod = container.pod["spec"]
    image_user = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"][-1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_user.split(":")[0]
    assert pod["automountServiceAccountToken"] is False
    security = container.spec["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"] for m in container.spec["volumeMounts"]}
    assert container.env["HOOKSTREAM_DATA_DIR"] in mounts


def test_worker_api_token_comes_from_the_secret() -> None:
    """HOOKSTREAM_API_TOKEN is read from Secret hookstream-secrets, never written in a manifest."""
    (worker,) = [c for c in k8s_containers() if c.name.startswith("hookstream-worker/")]
    assert worker.env["HOOKSTREAM_API_TOKEN"] == "<secret:hookstream-secrets/api-token>"
    assert not _by_kind("Secret"), "secrets are created by the operator, not kept in git"
    for container in k8s_containers():
        if container.name != worker.name:
            assert "HOOKSTREAM_API_TOKEN" not in container.env


@pytest.mark.parametrize("kind", ["webhook", "notification"])
def test_dispatcher_secrets_are_a_mounted_folder(kind: str) -> None:
    """Each dispatcher mounts its own Secret read-only where its secrets_dir setting says."""
    prefix = f"hookstream-dispatch-{kind}/"
    (container,) = [c for c in k8s_containers() if c.name.startswith(prefix)]
    folder = container.env[SECRETS_DIR_ENV]
    (mount,) = [m for m in container.spec["volumeMounts"] if m["mountPath"] == folder]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in container.pod["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == f"hookstream-{kind}-secrets"


def test_service_targets_the_workers() -> None:
    """The worker Service selects the worker pods (only) and forwards to their web port."""
    service = _by_kind("Service")["hookstream-worker"]
    deployments = _by_kind("Deployment")
    selected = [
        name
        for name, d in deployments.items()
        if _selects(service["spec"]["selector"], _pod_labels(d))
    ]
    assert selected == ["hookstream-worker"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == 6066
    assert port["targetPort"] == "http"


def test_each_deployment_has_one_disruption_budget() -> None:
    """Every Deployment's pods are selected by exactly one PodDisruptionBudget keeping one up."""
    budgets = _by_kind("PodDisruptionBudget")
    for name, deployment in _by_kind("Deployment").items():
        matching = [
            b
            for b in budgets.values()
            if _selects(b["spec"]["selector"]["matchLabels"], _pod_labels(deployment))
        ]
        assert len(matching) == 1, name
        assert matching[0]["spec"]["minAvailable"] == 1
        assert deployment["spec"]["replicas"] > matching[0]["spec"]["minAvailable"], name


def test_pod_labels_give_the_alert_job_names() -> None:
    """kubernetes.yml names jobs hookstream-<component>: those are the jobs alerts.yml uses."""
    components = {
        _pod_labels(d)["app.kubernetes.io/component"] for d in _by_kind("Deployment").values()
    }
    assert {f"hookstream-{c}" for c in components} == {"hookstream-worker", "hookstream-dispatcher"}
