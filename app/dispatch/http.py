"""The webhook sender: builds signed requests and makes one guarded HTTP attempt."""

# One `WebhookSender` owns one aiohttp ClientSession whose connector resolves through
# `GuardedResolver` and creates sockets through the policy's socket factory. The
# session never follows redirects, never reads proxies from the environment
# (trust_env=False) and keeps no cookies (one receiver's cookies must not reach another).

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from app import __version__
from app.contract.results import ErrorKind
from app.dispatch.delivery_errors import (
    BlockedAddressError,
    BlockedTargetError,
    DispatchError,
    InvalidJobError,
    SecretNotConfiguredError,
)
from app.dispatch.netguard import GuardedResolver, NetworkPolicy, check_url
from app.dispatch.outcome import AttemptOutcome, is_2xx
from app.dispatch.secrets import SecretResolver
from app.dispatch.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WANDB_SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    decode_secret,
    sign,
    sign_wandb,
)
from app.dispatch_settings import DispatchSettings
from app.serialization import dumps

__all__ = [
    "AUTOMATION_ID_HEADER",
    "RESERVED_HEADERS",
    "USER_AGENT",
    "PreparedRequest",
    "WebhookSender",
    "failed_outcome",
    "prepare_webhook",
]

USER_AGENT = f"Hookstream/{__version__}"

#: Names the automation of a delivery (for receivers' logs and `hookstream listen`). Like
#: every header it is outside the signature; it replaces a custom header of that name.
AUTOMATION_ID_HEADER = "Hookstream-Automation-Id"

#: Headers Hookstream sets itself; a job's custom headers may not name them.
RESERVED_HEADERS = frozenset(
    {
        WEBHOOK_ID_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        WANDB_SIGNATURE_HEADER.lower(),
        "authorization",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "user-agent",
    }
)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ERROR_LIMIT = 500


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A ready-to-send POST; its repr shows nothing (URL and headers may be credentials)."""

    url: str = field(repr=False)
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


def failed_outcome(kind: ErrorKind, reason: str, at: datetime) -> AttemptOutcome:
    """An outcome for an attempt that never reached the network."""
    return AttemptOutcome(at=at, duration_seconds=0.0, error_kind=kind, error=reason)


def _custom_headers(raw: object) -> dict[str, str]:
    """Validate a job's rendered custom headers; InvalidJobError if unsafe."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidJobError("action headers must be an object")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidJobError(f"invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidJobError(f"header {name!r} is set by Hookstream and cannot be overridden")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise InvalidJobError(f"invalid value for header {name!r}")
        headers[name] = value
    return headers


def _payload_bytes(payload: object) -> bytes:
    """The body: rendered JSON text sent byte for byte (objects are serialised once)."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, dict | list):
        return dumps(payload)
    raise InvalidJobError("the action has no payload")


def _secret_name(action: Mapping[str, Any], key: str) -> str | None:
    """A secret name field of the action, or None when unset."""
    value = action.get(key)
    if value is None or value == "":
        return None
    return SecretResolver.check_name(value)


def prepare_webhook(
    job: Mapping[str, Any], secrets: SecretResolver, *, timestamp: int
) -> PreparedRequest:
    """Build the signed POST of a webhook job; InvalidJobError / SecretNotConfiguredError."""
    action = job.get("action")
    if not isinstance(action, Mapping):
        raise InvalidJobError("the job has no action object")
    job_id = job.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidJobError("the job has no job_id")
    url = action.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidJobError("the action has no url")
    body = _payload_bytes(action.get("payload"))
    headers = {
        name: value
        for name, value in _custom_headers(action.get("headers")).items()
        if name.lower() != AUTOMATION_ID_HEADER.lower()
    }
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            WEBHOOK_ID_HEADER: job_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
    )
    automation_id = job.get("automation_id")
    if isinstance(automation_id, str) and automation_id.isprintable():
        headers[AUTOMATION_ID_HEADER] = automation_id
    secret_name = _secret_name(action, "secret")
    if secret_name is not None:
        values = [s.get_secret_value() for s in secrets.resolve_many(secret_name)]
        try:
            keys = [decode_secret(v) for v in values]
        except ValueError:
            raise SecretNotConfiguredError(secret_name) from None
        headers[SIGNATURE_HEADER] = sign(keys, job_id, timestamp, body)
        headers[WANDB_SIGNATURE_HEADER] = sign_wandb(values[0], body)
    token_name = _secret_name(action, "access_token")
    if token_name is not None:
        token = secrets.resolve(token_name).get_secret_value()
        if any(c in token for c in "\r\n\0"):
            raise SecretNotConfiguredError(token_name)
        headers["Authorization"] = f"Bearer {token}"
    return PreparedRequest(url=url, body=body, headers=headers)


def _find_blocked(exc: BaseException) -> BlockedAddressError | None:
    """The BlockedAddressError behind an aiohttp error, if there is one."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedAddressError):
            return current
        todo.extend([current.__cause__, current.__context__, getattr(current, "os_error", None)])
    return None


def _scrub(text: str, url: str) -> str:
    """Remove the URL's path and query (they can be credentials) from an error text."""
    try:
        parsed = URL(url)
        origin = str(parsed.origin())
        path_qs = parsed.raw_path_qs
    except (ValueError, TypeError):
        return "connection error"
    text = text.replace(url, origin)
    if path_qs not in ("", "/"):
        text = text.replace(path_qs, "/<redacted>")
    return text[:_ERROR_LIMIT]


def _describe(exc: BaseException) -> str:
    """A short, URL-free description of a transport error."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        detail = os_error.strerror or str(os_error) or type(os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {detail}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _status_text(status: int) -> str:
    """`HTTP 503 Service Unavailable` style text for a non-2xx response."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` bytes of the body; the flag says whether more was there."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = await resp.content.read(limit - len(buf))
        if not chunk:
            return bytes(buf), False
        buf += chunk
    more = await resp.content.read(1)
    return bytes(buf), bool(more)


class WebhookSender:
    """Makes delivery attempts over one shared, guarded ClientSession."""

    def __init__(
        self,
        settings: DispatchSettings,
        *,
        resolver: AbstractResolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.policy = NetworkPolicy.from_settings(settings)
        self._inner_resolver = resolver
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (inside the running loop); idempotent."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy, self._inner_resolver),
            socket_factory=self.policy.socket_factory,
            limit=self.settings.max_connections,
            limit_per_host=self.settings.max_connections_per_host,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            raise_for_status=False,
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on exit."""
        await self.close()

    def now(self) -> datetime:
        """The sender's clock as an aware datetime."""
        return datetime.fromtimestamp(self._clock(), UTC)

    async def send(self, job: Mapping[str, Any], secrets: SecretResolver) -> AttemptOutcome:
        """One attempt of a webhook job; problems become outcomes, never exceptions."""
        at = self.now()
        try:
            request = prepare_webhook(job, secrets, timestamp=int(at.timestamp()))
        except SecretNotConfiguredError as exc:
            return failed_outcome(ErrorKind.SECRET, exc.reason, at)
        except InvalidJobError as exc:
            return failed_outcome(ErrorKind.INVALID_JOB, exc.reason, at)
        return await self.post(request, at=at)

    async def post(self, request: PreparedRequest, *, at: datetime | None = None) -> AttemptOutcome:
        """POST a prepared request once: no redirects, total timeout, truncated body."""
        at = at or self.now()
        try:
            check_url(request.url, self.policy)
        except BlockedTargetError as exc:
            return failed_outcome(ErrorKind.BLOCKED, exc.reason, at)
        except DispatchError as exc:
            return failed_outcome(ErrorKind.INVALID_JOB, exc.reason, at)
        await self.start()
        assert self._session is not None
        timeout = self.settings.timeout_seconds
        limit = self.settings.response_body_limit_bytes
        started = time.perf_counter()
        status: int | None = None
        retry_after: str | None = None
        data = b""
        truncated = False
        body_error: str | None = None
        try:
            async with (
                asyncio.timeout(timeout),
                self._session.post(
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    allow_redirects=False,
                ) as resp,
            ):
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                try:
                    data, truncated = await _read_limited(resp, limit)
                except (aiohttp.ClientError, OSError) as exc:
                    body_error = f"response body unreadable: {_describe(exc)}"
        except TimeoutError:
            if status is None:
                return AttemptOutcome(
                    at=at,
                    duration_seconds=time.perf_counter() - started,
                    error_kind=ErrorKind.TIMEOUT,
                    error=f"timed out after {timeout:g}s",
                )
            body_error = f"timed out after {timeout:g}s reading the response body"
        except (aiohttp.ClientError, OSError) as exc:
            blocked = _find_blocked(exc)
            refused = blocked is not None or "refused by network policy" in str(exc)
            reason = blocked.reason if blocked is not None else _describe(exc)
            return AttemptOutcome(
                at=at,
                duration_seconds=time.perf_counter() - started,
                error_kind=ErrorKind.BLOCKED if refused else ErrorKind.CONNECTION,
                error=_scrub(reason, request.url),
            )
        duration = time.perf_counter() - started
        assert status is not None  # a timeout before the status returned above
        error = None if is_2xx(status) else _status_text(status)
        if body_error is not None:
            body_error = _scrub(body_error, request.url)
            error = f"{error}; {body_error}" if error else body_error
        return AttemptOutcome(
            at=at,
            duration_seconds=duration,
            status=status,
            error=error,
            response_body=data.decode("utf-8", errors="replace") if limit else None,
            response_truncated=truncated,
            retry_after=retry_after,
        )
