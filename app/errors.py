"""The one error hierarchy of Hookstream."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FilterError",
    "HookstreamError",
    "InvalidAutomationError",
    "InvalidEventError",
    "JobTooLargeError",
    "RenderLimitError",
    "SignatureVerificationError",
    "TemplateError",
    "UnknownVariableError",
]


class HookstreamError(Exception):
    """Base of every error Hookstream raises on purpose."""


class ConfigError(HookstreamError):
    """Settings or a deployment file are wrong."""


class InvalidEventError(HookstreamError):
    """An event cannot be processed; `reason` is what goes to the dead-letter topic."""

    def __init__(self, reason: str, *, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class InvalidAutomationError(HookstreamError):
    """An automation is refused; `errors` lists (field, reason) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))


class FilterError(HookstreamError):
    """A filter expression is invalid; `path` is where in the filter."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TemplateError(HookstreamError):
    """A template is invalid (unknown variable, bad syntax)."""


class RenderLimitError(TemplateError):
    """Rendering one job's templates would insert more characters than allowed."""


class JobTooLargeError(HookstreamError):
    """A rendered action job is larger than the largest record the worker may produce."""


class UnknownVariableError(TemplateError):
    """A template names variables that do not exist; `names` lists them."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(f"${{{name}}}" for name in names)
        super().__init__(f"unknown variable{'s' if len(names) > 1 else ''} {shown}")


class SignatureVerificationError(HookstreamError):
    """A received webhook fails signature verification; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
