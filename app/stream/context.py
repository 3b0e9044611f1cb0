"""Faust's current event, set for a table write made outside per-event iteration.

Inside ``take``/``noack_take``/``take_events`` batches Faust sets no current event
(faust-streaming #300), yet a table's store needs one to know the partition of a
write: the RocksDB store asserts it, and ``Table.__setitem__`` reads it to pick the
changelog partition. ``current_event_of`` sets it for the duration of one write, the
way Faust's own per-event iterator does, and restores what was there.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The context variable behind faust.current_event(); no public setter exists (#300).
from faust.streams import _current_event

__all__ = ["current_event_of"]


@contextmanager
def current_event_of(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event inside the block."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
