"""Bearer-token checks and the refusal to serve writes beyond loopback without a token."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.api.auth import check_authorization, check_safe_bind, is_loopback
from app.api.problems import ApiError
from app.errors import ConfigError
from app.settings import Settings

TOKEN = SecretStr("s3cret-token")


def status_of(
    header: str | None, token: SecretStr | None = TOKEN, remote: str = "127.0.0.1"
) -> int:
    """The status check_authorization refuses with, or 200 when it accepts."""
    try:
        check_authorization(header, token, remote=remote)
    except ApiError as exc:
        return exc.status
    return 200


def test_the_right_token_is_accepted() -> None:
    """'Bearer <token>' passes, whatever the scheme's case."""
    assert status_of("Bearer s3cret-token") == 200
    assert status_of("bearer s3cret-token") == 200


@pytest.mark.parametrize("header", [None, "", "s3cret-token", "Basic abc", "Bearer", "Bearer a b"])
def test_missing_or_malformed_header_is_401(header: str | None) -> None:
    """No header, another scheme, or no single credential: 401 with a challenge."""
    with pytest.raises(ApiError) as caught:
        check_authorization(header, TOKEN)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer s3cret-token-", "Bearer S3CRET-TOKEN"])
def test_wrong_token_is_403(header: str) -> None:
    """A well-formed header with another token: 403."""
    assert status_of(header) == 403


def test_without_a_token_only_loopback_peers_may_write() -> None:
    """No token configured: loopback clients write freely, others get 403."""
    assert status_of(None, token=None, remote="127.0.0.1") == 200
    assert status_of(None, token=None, remote="::1") == 200
    assert status_of(None, token=None, remote="10.0.0.7") == 403


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only names and addresses that always mean this machine count."""
    assert is_loopback(host) is loopback


def test_wide_bind_without_a_token_refuses_to_start() -> None:
    """0.0.0.0 without a token is a ConfigError naming the fix."""
    with pytest.raises(ConfigError, match="HOOKSTREAM_API_TOKEN"):
        check_safe_bind(Settings(web_host="0.0.0.0", api_token=None))


def test_loopback_without_a_token_and_any_host_with_one_may_start() -> None:
    """The two safe configurations pass."""
    check_safe_bind(Settings(web_host="127.0.0.1", api_token=None))
    check_safe_bind(Settings(web_host="0.0.0.0", api_token=TOKEN))
