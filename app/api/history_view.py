"""GET /automations/{id}/history: answered by any worker, served by the partition's owner."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from app.api.http import ApiContext, ApiView
from app.api.problems import ApiError
from app.api.routing import (
    FORWARDED_HEADER,
    SERVED_BY_HEADER,
    forward_get,
    key_partition,
    owner_url,
    this_url,
)
from app.serialization import JSONDecodeError, loads

__all__ = ["HistoryView", "history_limit", "history_owner", "local_history", "read_history"]


def history_owner(ctx: ApiContext, automation_id: str, *, forwarded: bool) -> str | None:
    """The URL of the worker holding `automation_id`'s history; None when it is this one.

    Raises ApiError 503 while the partition has no owner or is moving.
    """
    partition = key_partition(automation_id.encode(), ctx.history.partitions)
    return owner_url(
        ctx.app,
        ctx.history.name,
        ctx.history.changelog_topic,
        partition,
        forwarded=forwarded,
        what="history",
    )


def local_history(ctx: ApiContext, automation_id: str, limit: int) -> dict[str, Any]:
    """The history this worker holds, with the newest `limit` executions."""
    history = ctx.history.get(automation_id)
    history["executions"] = history.get("executions", [])[:limit]
    return history


async def read_history(ctx: ApiContext, automation_id: str, limit: int) -> dict[str, Any]:
    """One automation's history from whichever worker holds it (the console's read)."""
    owner = history_owner(ctx, automation_id, forwarded=False)
    if owner is None:
        return local_history(ctx, automation_id, limit)
    answer = await forward_get(
        ctx.app.http_client,
        owner,
        f"/automations/{quote(automation_id, safe='')}/history?limit={limit}",
        _me(ctx),
        ctx.settings.api_forward_timeout_seconds,
    )
    try:
        body = loads(answer.body)
    except JSONDecodeError:
        body = None
    if answer.status != 200 or not isinstance(body, dict):
        raise ApiError(503, f"the worker holding this history ({owner}) answered {answer.status}")
    return body


def _me(ctx: ApiContext) -> str:
    return this_url(ctx.app)


class HistoryView(ApiView):
    """/automations/{id}/history: served by the worker holding the key's partition."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """The last executions and the counters of one automation."""
        ctx = self.ctx
        ctx.store.ensure_loaded()
        ctx.store.get(automation_id)
        limit = history_limit(request.query.get("limit"), ctx.settings.history_size)
        me = _me(ctx)
        owner = history_owner(
            ctx, automation_id, forwarded=bool(request.headers.get(FORWARDED_HEADER))
        )
        if owner is None:
            history = local_history(ctx, automation_id, limit)
            return self.reply(history, headers={SERVED_BY_HEADER: me})
        answer = await forward_get(
            ctx.app.http_client,
            owner,
            request.path_qs,
            me,
            ctx.settings.api_forward_timeout_seconds,
        )
        return self.bytes(
            answer.body,
            content_type="application/json",
            status=answer.status,
            headers={SERVED_BY_HEADER: answer.served_by},
        )


def history_limit(raw: str | None, size: int) -> int:
    """The `limit` query parameter, at most `size`; raises ApiError 400."""
    if raw is None:
        return size
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"query parameter limit={raw!r}: expected a positive integer")
    return min(int(raw), size)
