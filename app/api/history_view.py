"""GET /automations/{id}/history: answered by any worker, served by the partition's owner."""

from __future__ import annotations

from typing import Any

from app.api.http import ApiView
from app.api.problems import ApiError
from app.api.routing import (
    FORWARDED_HEADER,
    SERVED_BY_HEADER,
    forward_get,
    key_partition,
    owner_of,
    same_url,
)

__all__ = ["HistoryView"]


class HistoryView(ApiView):
    """/automations/{id}/history: served by the worker holding the key's partition."""

    async def get(self, request: Any, automation_id: str) -> Any:
        """The last executions and the counters of one automation."""
        ctx = self.ctx
        ctx.store.ensure_loaded()
        ctx.store.get(automation_id)
        limit = _limit(request.query.get("limit"), ctx.settings.history_size)
        # The URL this worker announced to the group (settings.advertised_url).
        me = str(ctx.app.conf.canonical_url).rstrip("/")
        partition = key_partition(automation_id.encode(), ctx.history.partitions)
        metadata = ctx.app.router.table_metadata(ctx.history.name)
        owner = owner_of(metadata, ctx.history.changelog_topic, partition)
        if owner is None or ctx.app.rebalancing:
            raise ApiError(
                503,
                "history partitions are being (re)assigned; retry",
                headers={"Retry-After": "1"},
            )
        if same_url(owner, me):
            history = ctx.history.get(automation_id)
            history["executions"] = history.get("executions", [])[:limit]
            return self.reply(history, headers={SERVED_BY_HEADER: me})
        if request.headers.get(FORWARDED_HEADER):
            # The sender thinks we own it and we think it does not: a rebalance is moving it.
            raise ApiError(503, "history partition is moving; retry", headers={"Retry-After": "1"})
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


def _limit(raw: str | None, size: int) -> int:
    if raw is None:
        return size
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"query parameter limit={raw!r}: expected a positive integer")
    return min(int(raw), size)
