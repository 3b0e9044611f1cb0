"""DispatchSettings defaults, validation and nesting into a BaseSettings via env."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.dispatch_settings import DispatchSettings


def test_defaults_are_the_documented_numbers() -> None:
    """Defaults: 10 s timeout, 8 attempts, 24 h age, 1 s..1 h backoff, https only."""
    s = DispatchSettings()
    assert (s.timeout_seconds, s.max_attempts, s.max_age_seconds) == (10.0, 8, 86400.0)
    assert (s.backoff_base_seconds, s.backoff_max_seconds) == (1.0, 3600.0)
    assert not s.allow_http
    assert not s.allow_private_networks
    assert s.dedup_retention_seconds == 7 * 86400


def test_nested_env_parsing() -> None:
    """HOOKSTREAM_DISPATCH__X variables reach the nested model, lists as JSON."""

    class Outer(BaseSettings):
        """Stand-in for the main Settings."""

        model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_", env_nested_delimiter="__")
        dispatch: DispatchSettings = DispatchSettings()

    env = {
        "HOOKSTREAM_DISPATCH__MAX_ATTEMPTS": "3",
        "HOOKSTREAM_DISPATCH__ALLOW_HTTP": "true",
        "HOOKSTREAM_DISPATCH__ALLOWED_NETWORKS": '["10.1.0.0/16"]',
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        outer = Outer()
    assert outer.dispatch.max_attempts == 3
    assert outer.dispatch.allow_http is True
    assert outer.dispatch.allowed_networks == (ipaddress.ip_network("10.1.0.0/16"),)


def test_backoff_cap_below_base_is_refused() -> None:
    """backoff_max_seconds < backoff_base_seconds is a configuration error."""
    with pytest.raises(ValidationError, match="backoff_max_seconds"):
        DispatchSettings(backoff_base_seconds=10, backoff_max_seconds=5)


def test_unknown_template_variable_is_refused() -> None:
    """artifact_url_template accepts only known variables."""
    with pytest.raises(ValidationError, match="nope"):
        DispatchSettings(artifact_url_template="https://x/${nope}")


def test_tiers_must_increase() -> None:
    """Retry tiers out of order are refused."""
    with pytest.raises(ValidationError, match="increasing"):
        DispatchSettings(retry_tiers_seconds=(30.0, 5.0))


def test_allowed_hosts_normalised() -> None:
    """Allowed host names are lower-cased without trailing dot; junk is refused."""
    assert DispatchSettings(allowed_hosts=("CI.Internal.",)).allowed_hosts == ("ci.internal",)
    with pytest.raises(ValidationError):
        DispatchSettings(allowed_hosts=("http://x/",))


def test_retry_topic_names() -> None:
    """A tier's topic is the action topic plus the suffix with the tier in seconds."""
    s = DispatchSettings()
    assert s.retry_topic("actions.webhook", 30.0) == "actions.webhook.retry.30s"
    assert s.retry_topic("actions.webhook", 0.5) == "actions.webhook.retry.0.5s"
