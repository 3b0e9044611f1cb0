"""The one error type of the management API: an HTTP status with a reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.errors import HookstreamError

__all__ = ["ApiError"]


class ApiError(HookstreamError):
    """An API request is refused; `errors` lists (field, reason) pairs for 422."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def prefixed(self, prefix: str) -> ApiError:
        """The same error with each field path under `prefix` (e.g. `event.entity`)."""
        errors = [(f"{prefix}.{field}" if field else prefix, why) for field, why in self.errors]
        return ApiError(self.status, self.reason, errors=errors, headers=self.headers)

    def body(self) -> dict[str, object]:
        """The JSON body: `error`, and `errors` as [{field, reason}] when there are any."""
        out: dict[str, object] = {"error": self.reason, "status": self.status}
        if self.errors:
            out["errors"] = [{"field": field, "reason": reason} for field, reason in self.errors]
        return out
