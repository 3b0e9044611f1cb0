"""The detail page's timeline: executions counted per time bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.api.console.timeline import MIN_SPAN_SECONDS, timeline
from app.contract.timestamps import iso_z

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def execution(fired: timedelta, status: str, ended: timedelta | None = None) -> dict[str, Any]:
    """An execution matched `fired` before NOW, last updated `ended` before NOW."""
    return {
        "status": status,
        "matched_at": iso_z(NOW - fired),
        "created_at": iso_z(NOW - fired),
        "updated_at": iso_z(NOW - (ended if ended is not None else fired)),
    }


def test_no_executions_is_an_empty_timeline() -> None:
    """Nothing to draw: no buckets."""
    assert timeline([], NOW).times == []


def test_firings_and_final_statuses_land_in_their_minutes() -> None:
    """One-minute buckets over the last hour; each count in the bucket of its moment."""
    chart = timeline(
        [
            execution(timedelta(minutes=2), "FINISHED", timedelta(minutes=1)),
            execution(timedelta(minutes=2), "FAILED"),
            execution(timedelta(seconds=10), "PENDING"),
        ],
        NOW,
    )
    assert chart.step == 60
    assert chart.step_label == "1 min"
    assert len(chart.times) == MIN_SPAN_SECONDS // 60 + 1
    assert (sum(chart.firings), sum(chart.finished), sum(chart.failed)) == (3, 1, 1)
    by_time = {datetime.fromtimestamp(t, UTC): row for t, *row in chart.rows()}
    assert by_time[datetime(2026, 12, 1, 11, 58, tzinfo=UTC)] == [2, 0, 1]
    assert by_time[datetime(2026, 12, 1, 11, 59, tzinfo=UTC)] == [0, 1, 0]
    assert by_time[datetime(2026, 12, 1, 12, 0, tzinfo=UTC)] == [1, 0, 0]


def test_a_long_span_takes_wider_buckets() -> None:
    """Three days of executions: at most 60 buckets, here 6-hour ones."""
    chart = timeline([execution(timedelta(days=3), "FINISHED")], NOW)
    assert chart.step == 6 * 3600
    assert chart.step_label == "6 hours"
    assert len(chart.times) <= 60
    assert sum(chart.firings) == sum(chart.finished) == 1


def test_unreadable_times_are_left_out() -> None:
    """An execution without a readable time counts nowhere, and nothing breaks."""
    chart = timeline([{"status": "FINISHED", "matched_at": "yesterday"}], NOW)
    assert chart.times == []
