"""Helpers of the API integration tests: per-module settings, a raw HTTP client, polling."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app import serialization
from app.kafka.admin import TopicSpec, ensure_topics
from app.settings import Settings
from tests.integration.harness import isolated_settings

__all__ = [
    "Reply",
    "http",
    "module_settings",
    "webhook_automation",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reply:
    """Status, headers (lower-cased names) and the body, parsed when it is JSON."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return serialization.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> Reply:
    """One request; every status is returned, none raised."""
    data = raw if raw is not None else (None if body is None else serialization.dumps(body))
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, _lower(exc.headers), exc.read())


def _lower(headers: Any) -> dict[str, str]:
    """Headers as a dict with lower-cased names."""
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def module_settings(
    bootstrap: str, tmp: Path, uid: str | None = None, **overrides: Any
) -> Settings:
    """Settings with their own topics and consumer group (fresh unless `uid`); the topics exist."""
    uid = uid or uuid.uuid4().hex[:10]
    settings = isolated_settings(bootstrap, uid, tmp, **overrides)
    asyncio.run(ensure_topics(settings, [TopicSpec(f"model-links-{uid}", 1)]))
    return settings


def webhook_automation(automation_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid registry webhook automation on ADD_ARTIFACT_ALIAS as a JSON object."""
    data: dict[str, Any] = {
        "id": automation_id,
        "name": f"deploy {automation_id}",
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": {"type": "registry", "entity": "acme", "registry": "model"},
        "filter": {"alias": {"$regex": "^prod"}},
        "action": {
            "type": "webhook",
            "url": "https://ci.example.com/hooks/deploy",
            "payload": '{"model": "${artifact_version_string}", "alias": "${alias}"}',
        },
    }
    data.update(overrides)
    return data
