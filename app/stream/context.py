"""Faust's current event, set for a table write made outside per-event iteration.

Inside ``take``/``noack_take``/``take_events`` batches Faust sets no current event
(faust-streaming #300), yet a table's store needs one to know the partition of a
write: the RocksDB store asserts it, and ``Table.__setitem__`` reads it to pick the
changelog partition. ``current_event_of`` sets it for the duration of one write, the
way Faust's own per-event iterator does, and restores what was there.
"""

from __future__ import annotations

import weakref
from contextvars import Token
from typing import Any

# The context variable behind faust.current_event(); no public setter exists (#300).
from faust.streams import _current_event

__all__ = ["current_event_of"]


class current_event_of:  # used as a context manager, like a function
    """Make ``event`` Faust's current event inside the ``with`` block.

    A class rather than ``@contextmanager``: it runs once per alias write on the event
    path, and a generator-based manager costs several times as much per use.
    """

    __slots__ = ("_event", "_token")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._token: Token[Any] | None = None

    def __enter__(self) -> None:
        self._token = _current_event.set(weakref.ref(self._event))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current_event.reset(self._token)
            self._token = None
