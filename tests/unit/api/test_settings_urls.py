"""The URLs derived from settings: how workers and the CLI reach a worker."""

from __future__ import annotations

import socket

from app.settings import Settings


def test_loopback_host_is_used_as_is() -> None:
    """127.0.0.1 is both the advertised and the client address."""
    settings = Settings(web_host="127.0.0.1", web_port=7000)
    assert settings.advertised_url == "http://127.0.0.1:7000"
    assert settings.client_url == "http://127.0.0.1:7000"


def test_wildcard_host_advertises_its_own_address_and_the_cli_uses_loopback() -> None:
    """Nobody can connect to 0.0.0.0: other workers get the host's address, the CLI loopback."""
    settings = Settings(web_host="0.0.0.0", web_port=7000, api_token="t")
    assert settings.advertised_url == f"http://{socket.gethostbyname(socket.gethostname())}:7000"
    assert settings.client_url == "http://127.0.0.1:7000"


def test_explicit_urls_win_and_ipv6_is_bracketed() -> None:
    """canonical_url and api_url override; an IPv6 host is put in brackets."""
    settings = Settings(canonical_url="http://pod-1:6066/", api_url="http://api:80/")
    assert settings.advertised_url == "http://pod-1:6066"
    assert settings.client_url == "http://api:80"
    assert Settings(web_host="::1", web_port=1).client_url == "http://[::1]:1"
