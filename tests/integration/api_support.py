"""Helpers of the API integration tests: per-module settings, a raw HTTP client, polling."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app import serialization

__all__ = [
    "Reply",
    "http",
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
