"""The web console: automations, their history, dry runs and dead letters in a browser.

Served by every worker at its web address (`/` redirects to `/console/`), over the
management API's own code (app.api.console.views); docs/console.md shows each view.
Its static assets (page script, styles, the vendored htmx and uPlot) ship in the
package: nothing is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.api.console.views import (
    CONSOLE_PATH,
    ROUTES,
    STATIC_DIR,
    DeadLetterRow,
    DeadLettersPage,
    RecentDeadLetters,
)
from app.api.http import ApiContext
from app.contract.dead_letters import DeadLetter
from app.contract.timestamps import iso_z
from app.kafka.recent import read_recent
from app.serialization import JSONDecodeError, loads
from app.settings import Settings

__all__ = ["CONSOLE_PATH", "dead_letter_row", "define_console", "kafka_dead_letters"]

_PREVIEW_CHARS = 300


def dead_letter_row(value: bytes | None, partition: int, offset: int) -> DeadLetterRow:
    """A record of the dead-letter topic as a console row; an unreadable one says so."""
    try:
        letter = DeadLetter.model_validate(loads(value or b""))
    except (JSONDecodeError, ValidationError):
        return DeadLetterRow(
            failed_at="",
            source=f"dead-letter topic partition {partition} offset {offset}",
            error_code="unreadable",
            reason="this record of the dead-letter topic is not a dead letter",
            event_id=None,
            preview="",
        )
    original = letter.original_value() or b""
    preview = original[:_PREVIEW_CHARS].decode("utf-8", "replace")
    if len(original) > _PREVIEW_CHARS or letter.value_truncated:
        preview += " ..."
    return DeadLetterRow(
        failed_at=iso_z(letter.failed_at),
        source=f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}",
        error_code=letter.error_code,
        reason=letter.reason,
        event_id=letter.event_id,
        preview=preview,
    )


def kafka_dead_letters(settings: Settings) -> RecentDeadLetters:
    """Read the newest records of the dead-letter topic on each request."""

    async def recent(limit: int) -> list[DeadLetterRow]:
        records = await read_recent(settings.kafka_bootstrap_servers, settings.dlq_topic, limit)
        return [dead_letter_row(r.value, r.partition, r.offset) for r in records]

    return recent


def define_console(
    app: Any, ctx: ApiContext, *, dead_letters: RecentDeadLetters | None = None
) -> None:
    """Register the console's pages and static files on the Faust app's web server."""
    recent = dead_letters or kafka_dead_letters(ctx.settings)
    for path, view in ROUTES:
        attributes: dict[str, Any] = {"ctx": ctx, "__doc__": view.__doc__}
        if issubclass(view, DeadLettersPage):
            attributes["recent"] = staticmethod(recent)
        bound = type(view.__name__, (view,), attributes)
        app.page(path, name=f"console-{view.__name__}")(bound)
    app.web.add_static(CONSOLE_PATH + "static/", STATIC_DIR)
