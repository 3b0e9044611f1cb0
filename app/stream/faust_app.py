"""The worker's Faust app at module level, for Faust's own command line.

``faust -A app.stream.faust_app agents`` (or ``tables``, ``routes``, ``worker``)
builds the worker from the environment's settings, as ``hookstream worker`` does, and
hands Faust its app. ``hookstream worker`` remains the way to run it: it creates the
topics first and picks uvloop.
"""

from __future__ import annotations

from app.settings import get_settings
from app.stream.worker import create_worker

__all__ = ["app", "hookstream"]

hookstream = create_worker(get_settings())
app = hookstream.app
