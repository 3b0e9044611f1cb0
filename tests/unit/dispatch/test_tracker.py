"""Offset bookkeeping: only the contiguous prefix of finished offsets is committable."""

from __future__ import annotations

import pytest

from app.dispatch.tracker import OffsetTracker


def test_gap_holds_the_commit_back() -> None:
    """Offsets finished after an unfinished one are not committable until it finishes."""
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.register(offset)
    tracker.finish(6)
    tracker.finish(7)
    assert tracker.committable() is None
    assert len(tracker) == 1
    tracker.finish(5)
    assert tracker.committable() == 8
    assert len(tracker) == 0


def test_prefix_advances_in_steps() -> None:
    """The committable offset is one past the last offset of the finished prefix."""
    tracker = OffsetTracker()
    for offset in (0, 1, 3, 4):  # 2 was compacted away or is a transaction marker
        tracker.register(offset)
    tracker.finish(0)
    assert tracker.committable() == 1
    tracker.finish(3)
    assert tracker.committable() == 1
    tracker.finish(1)
    assert tracker.committable() == 4


def test_out_of_order_registration_is_refused() -> None:
    """Registering an offset not above the last one is a bug, not a silent miscount."""
    tracker = OffsetTracker()
    tracker.register(3)
    with pytest.raises(ValueError, match="out of order"):
        tracker.register(3)
