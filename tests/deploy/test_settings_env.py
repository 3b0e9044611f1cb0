"""Every environment variable the deployment files pass is one app/settings.py reads."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, SecretStr

from app.settings import Settings
from tests.deploy.manifests import (
    HOOKSTREAM_SERVICES,
    compose,
    compose_env,
    dockerfile_env,
    k8s_containers,
)

PREFIX = "HOOKSTREAM_"
DISPATCH_PREFIX = "HOOKSTREAM_DISPATCH__"
#: Variables of the image that are Python's own, not Hookstream settings.
PYTHON_RUNTIME_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def _env_names_of_field(name: str, info: Any) -> set[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return {str(choice).upper() for choice in alias.choices if isinstance(choice, str)}
    if isinstance(alias, str):
        return {alias.upper()}
    return {f"{PREFIX}{name.upper()}"}


def settings_env_fields() -> dict[str, str]:
    """Env name -> Settings field, derived from Settings.model_fields (aliases honoured)."""
    names = {}
    for name, info in Settings.model_fields.items():
        for env_name in _env_names_of_field(name, info):
            names[env_name] = name
    return names


def is_settings_env(name: str) -> bool:
    """True when Settings reads this variable as a top-level field."""
    return name.upper() in settings_env_fields()


def deployment_env() -> dict[str, dict[str, str]]:
    """Where -> env of every Hookstream process the deployment files configure."""
    services = compose()["services"]
    found = {f"compose:{name}": compose_env(services[name]) for name in HOOKSTREAM_SERVICES}
    for container in k8s_containers():
        found[f"k8s:{container.name}"] = container.env
    found["Dockerfile"] = {
        key: value for key, value in dockerfile_env().items() if key not in PYTHON_RUNTIME_ENV
    }
    return found


def _dispatch_model() -> type[BaseModel] | None:
    info = Settings.model_fields.get("dispatch")
    if info is None:
        return None
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def test_checker_rejects_unknown_names() -> None:
    """The name check itself: real settings pass, misspelt or foreign names do not."""
    assert is_settings_env("HOOKSTREAM_WEB_PORT")
    assert is_settings_env("KAFKA_BOOTSTRAP_SERVERS")
    assert not is_settings_env("HOOKSTREAM_WEB_PROT")
    assert not is_settings_env("HOOKSTREAM_KAFKA_BROKERS")


def test_every_process_is_configured() -> None:
    """Compose services, k8s containers and the Dockerfile all pass some settings."""
    env = deployment_env()
    assert len([where for where in env if where.startswith("k8s:")]) == 3
    assert all(env.values()), [where for where, values in env.items() if not values]


def test_only_settings_variables_are_passed() -> None:
    """Hookstream processes get only HOOKSTREAM_* settings and KAFKA_BOOTSTRAP_SERVERS."""
    unknown = {
        f"{where}: {name}"
        for where, env in deployment_env().items()
        for name in env
        if not name.startswith(DISPATCH_PREFIX) and not is_settings_env(name)
    }
    assert not unknown, f"not read by app/settings.py: {sorted(unknown)}"


def test_dispatch_variables_are_dispatch_settings() -> None:
    """HOOKSTREAM_DISPATCH__X names a field of Settings.dispatch (when that field exists)."""
    used = {
        name
        for env in deployment_env().values()
        for name in env
        if name.startswith(DISPATCH_PREFIX)
    }
    assert used, "the dispatchers are expected to get HOOKSTREAM_DISPATCH__SECRETS_DIR"
    model = _dispatch_model()
    if model is None:
        pytest.skip(
            "app.settings.Settings has no `dispatch` field yet, so these names are not checked: "
            + ", ".join(sorted(used))
        )
    fields = {name.upper() for name in model.model_fields}
    unknown = sorted(name for name in used if name.removeprefix(DISPATCH_PREFIX) not in fields)
    assert not unknown, f"not fields of Settings.dispatch: {unknown}"


def _as_text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


@pytest.mark.parametrize("where", sorted(deployment_env()))
def test_settings_read_the_values(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a process's environment set, Settings() validates and holds exactly those values."""
    env = deployment_env()[where]
    for name in list(os.environ):
        if name.startswith(PREFIX) or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    fields = settings_env_fields()
    for name, value in env.items():
        if name.startswith(DISPATCH_PREFIX):
            if _dispatch_model() is not None:
                field = name.removeprefix(DISPATCH_PREFIX).lower()
                assert _as_text(settings.model_dump()["dispatch"][field]) == value, name
            continue
        assert _as_text(getattr(settings, fields[name])) == value, f"{where}: {name}"
