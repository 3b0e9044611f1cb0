"""Read the deployment files: compose services, Kubernetes objects, the Dockerfile, env names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import COMPOSE, DEPLOY, K8S, load_yaml_documents

__all__ = [
    "DOCKERFILE",
    "HOOKSTREAM_SERVICES",
    "Container",
    "compose",
    "compose_env",
    "dockerfile_env",
    "dockerfile_instructions",
    "k8s_containers",
    "k8s_objects",
    "kustomization",
]

DOCKERFILE = DEPLOY / "Dockerfile"

#: Compose services that run the Hookstream image.
HOOKSTREAM_SERVICES = (
    "topics",
    "apply",
    "worker-1",
    "worker-2",
    "dispatch-webhook",
    "dispatch-notification",
)

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml (anchors and merge keys resolved by YAML)."""
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _env_mapping(environment: Any) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, list):
        pairs = (str(item).partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with ${VAR...} interpolations replaced by `<VAR>`."""
    return {
        key: _INTERPOLATION.sub(lambda m: f"<{m.group(1)}>", value)
        for key, value in _env_mapping(service.get("environment")).items()
    }


def kustomization() -> dict[str, Any]:
    """The parsed deploy/k8s/kustomization.yaml."""
    document = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


def k8s_objects() -> list[dict[str, Any]]:
    """Every object of every resource file the kustomization lists."""
    objects: list[dict[str, Any]] = []
    for name in kustomization().get("resources", []):
        objects.extend(load_yaml_documents(K8S / name))
    return objects


@dataclass
class Container:
    """One container of a Kubernetes Deployment, with what its pod template says around it."""

    deployment: dict[str, Any]
    spec: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """`<deployment>/<container>`."""
        return f"{self.deployment['metadata']['name']}/{self.spec['name']}"

    @property
    def pod(self) -> dict[str, Any]:
        """The pod template."""
        template: dict[str, Any] = self.deployment["spec"]["template"]
        return template


def _configmaps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        obj["metadata"]["name"]: {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        for obj in objects
        if obj.get("kind") == "ConfigMap"
    }


def k8s_containers() -> list[Container]:
    """Containers of every Deployment, each with its effective env (configMap + env entries).

    Values from Secrets become `<secret:NAME/KEY>`.
    """
    objects = k8s_objects()
    configmaps = _configmaps(objects)
    found = []
    for deployment in (obj for obj in objects if obj.get("kind") == "Deployment"):
        for spec in deployment["spec"]["template"]["spec"]["containers"]:
            env: dict[str, str] = {}
            for source in spec.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(configmaps[source["configMapRef"]["name"]])
            for item in spec.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                else:
                    ref = item["valueFrom"]["secretKeyRef"]
                    env[item["name"]] = f"<secret:{ref['name']}/{ref['key']}>"
            found.append(Container(deployment, spec, env))
    return found


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    instructions = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """Variables set by ENV in the final stage (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            env = {}
        elif keyword == "ENV":
            for pair in rest.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT or CMD."""
    value = json.loads(arguments)
    assert isinstance(value, list)
    return [str(item) for item in value]
