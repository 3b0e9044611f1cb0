"""Kafka plumbing shared by the worker, the dispatchers and the CLI: topics, clients.

Below app.stream and app.dispatch so that the dispatchers (plain aiokafka) need not
import the Faust worker to create topics or read one to its end.
"""

from __future__ import annotations

__all__: list[str] = []
