"""Bearer-token checks of the API's writes, and the refusal to listen widely without one."""

from __future__ import annotations

import hmac
import ipaddress

from pydantic import SecretStr

from app.api.problems import ApiError
from app.errors import ConfigError
from app.settings import Settings

__all__ = ["WRITE_METHODS", "check_authorization", "check_safe_bind", "is_loopback"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hookstream"'}


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address only ever means this machine."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_safe_bind(settings: Settings) -> None:
    """Refuse to serve the API beyond loopback without a token; raises ConfigError."""
    if settings.api_token is None and not is_loopback(settings.web_host):
        raise ConfigError(
            f"refusing to listen on {settings.web_host}:{settings.web_port} without an API "
            "token: anyone who reaches that address could change automations. Set "
            "HOOKSTREAM_API_TOKEN, or HOOKSTREAM_WEB_HOST=127.0.0.1 to serve this machine only."
        )


def check_authorization(
    header: str | None, token: SecretStr | None, *, remote: str | None = None
) -> None:
    """Accept a write or raise ApiError: 401 without a usable header, 403 for a wrong token."""
    if token is None:
        # No token: check_safe_bind keeps the server on loopback; the peer check is a
        # second line in case a proxy on this machine forwards outside traffic.
        if remote is not None and not is_loopback(remote):
            raise ApiError(
                403, "no API token is configured: writes are accepted from loopback only"
            )
        return
    if not header:
        raise ApiError(401, "missing Authorization header (Bearer token)", headers=_CHALLENGE)
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials or " " in credentials:
        raise ApiError(
            401, "malformed Authorization header: expected 'Bearer <token>'", headers=_CHALLENGE
        )
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.encode(), expected):
        raise ApiError(403, "invalid API token")
