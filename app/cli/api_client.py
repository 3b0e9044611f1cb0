"""A small synchronous client of the management API, for the CLI (urllib, no event loop)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import HookstreamError
from app.serialization import JSONDecodeError, dumps, loads

__all__ = ["ApiClient", "ApiRequestError", "ApiResponse", "ApiUnavailableError"]


class ApiUnavailableError(HookstreamError):
    """Nothing answered at the API's URL (connection refused, unknown host, timeout)."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot reach the Hookstream API at {url}: {detail}")
        self.url = url


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """Status, headers and the decoded JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    data: Any = None

    def raise_for_status(self) -> ApiResponse:
        """Self, or ApiRequestError for a 4xx or 5xx."""
        if self.status >= 400:
            raise _refusal(self)
        return self


class ApiRequestError(HookstreamError):
    """The API refused a request; `errors` lists (field, reason) for a 422."""

    def __init__(self, status: int, reason: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.errors = list(errors or [])


class ApiClient:
    """Requests against one worker's API, with the bearer token when there is one."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """One request; raises ApiUnavailableError when nothing answers (any status returns)."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else dumps(body)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return _response(int(response.status), dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return _response(int(exc.code), dict(exc.headers or {}), exc.read())
        except urllib.error.URLError as exc:
            raise ApiUnavailableError(self.base_url, _detail(exc.reason)) from None
        except (TimeoutError, ConnectionError) as exc:
            raise ApiUnavailableError(self.base_url, _detail(exc)) from None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """Like `request`, but raises ApiRequestError for any 4xx or 5xx."""
        return self.request(method, path, body, query).raise_for_status()


def _detail(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is a worker running there? see --url / HOOKSTREAM_API_URL)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason) or type(reason).__name__


def _response(status: int, headers: dict[str, str], raw: bytes) -> ApiResponse:
    if not raw.strip():
        return ApiResponse(status, headers)
    try:
        return ApiResponse(status, headers, loads(raw))
    except JSONDecodeError:
        return ApiResponse(status, headers, {"error": raw.decode("utf-8", "replace")[:500]})


def _refusal(response: ApiResponse) -> ApiRequestError:
    data = response.data if isinstance(response.data, dict) else {}
    reason = str(data.get("error") or f"HTTP {response.status}")
    errors = [
        (str(item.get("field", "")), str(item.get("reason", "")))
        for item in data.get("errors") or []
        if isinstance(item, dict)
    ]
    return ApiRequestError(response.status, reason, errors)
