"""The `hookstream` command line: worker, dispatchers, topics, automations, the API client."""

from __future__ import annotations

__all__: list[str] = []
