"""The detail page's timeline: firings, finished and failed deliveries per time bucket.

Built from the executions the history keeps (the newest `history_size`, default 50),
so it spans what those cover; the counters beside it count every execution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["BUCKET_SECONDS", "Timeline", "timeline"]

# Bucket widths, the first that keeps the span within MAX_BUCKETS buckets.
BUCKET_SECONDS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60
# The chart shows at least this much time before now, so one firing is a point in time.
MIN_SPAN_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Timeline:
    """Bucket starts (Unix seconds) and the counts in each bucket."""

    step: int
    times: list[int]
    firings: list[int]
    finished: list[int]
    failed: list[int]

    def as_json(self) -> dict[str, Any]:
        """What the page hands to the chart (uPlot's columns)."""
        return {
            "step": self.step,
            "times": self.times,
            "firings": self.firings,
            "finished": self.finished,
            "failed": self.failed,
        }

    @property
    def step_label(self) -> str:
        """The bucket width in words, e.g. `5 min`, `6 hours`."""
        for size, unit in ((7 * 86400, "week"), (86400, "day"), (3600, "hour")):
            if self.step % size == 0:
                count = self.step // size
                return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
        return f"{self.step // 60} min"

    def rows(self) -> list[tuple[int, int, int, int]]:
        """(time, firings, finished, failed) of the non-empty buckets: the chart as a table."""
        columns = zip(self.times, self.firings, self.finished, self.failed, strict=True)
        return [row for row in columns if any(row[1:])]


def _when(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def timeline(executions: Iterable[Mapping[str, Any]], now: datetime) -> Timeline:
    """Count each execution's firing (matched_at, else created_at) and its final status."""
    fired: list[float] = []
    ended: list[tuple[float, str]] = []
    for execution in executions:
        at = _when(execution.get("matched_at")) or _when(execution.get("created_at"))
        if at is not None:
            fired.append(at)
        status = execution.get("status")
        done = _when(execution.get("updated_at"))
        if status in ("FINISHED", "FAILED") and done is not None:
            ended.append((done, str(status)))
    moments = fired + [at for at, _ in ended]
    if not moments:
        return Timeline(BUCKET_SECONDS[0], [], [], [], [])
    end = max(now.timestamp(), *moments)
    start = min(min(moments), end - MIN_SPAN_SECONDS)
    step = next((s for s in BUCKET_SECONDS if (end - start) / s <= MAX_BUCKETS), BUCKET_SECONDS[-1])
    first = int(start // step) * step
    count = int(end // step) * step // step - first // step + 1
    times = [first + i * step for i in range(count)]
    firings, finished, failed = [0] * count, [0] * count, [0] * count

    def slot(at: float) -> int:
        return min(int(at // step) - first // step, count - 1)

    for at in fired:
        firings[slot(at)] += 1
    for at, status in ended:
        (finished if status == "FINISHED" else failed)[slot(at)] += 1
    return Timeline(step, times, firings, finished, failed)
