"""Typed errors of the delivery core; each carries a `reason` safe to put in results."""

from __future__ import annotations

from app.errors import HookstreamError, SignatureVerificationError

__all__ = [
    "BlockedAddressError",
    "BlockedTargetError",
    "DispatchError",
    "InvalidJobError",
    "SecretNotConfiguredError",
    "ServiceStoppingError",
    "SignatureVerificationError",
]


class DispatchError(HookstreamError):
    """A job cannot be delivered; `reason` is written to action results (never a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidJobError(DispatchError):
    """The job is malformed (missing URL, bad header, unknown action type)."""


class SecretNotConfiguredError(DispatchError):
    """A secret named by a job is absent from the dispatcher's secret source."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} is not configured")
        self.name = name


class BlockedTargetError(DispatchError):
    """The target URL is refused by the network policy (scheme, address)."""


class BlockedAddressError(BlockedTargetError, OSError):
    """A resolved or connected address is refused; an OSError so aiohttp wraps it."""


class ServiceStoppingError(HookstreamError):
    """The dispatcher stopped before Kafka acknowledged a job's records; it is redelivered."""
