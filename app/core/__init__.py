"""Pure decisions: filters, templates, scopes, the automation index, the pipeline, history.

No Kafka, Faust, aiohttp or network I/O here (import-linter enforces it): everything is
a function of its arguments, so it is tested and reused without a broker.
"""

from __future__ import annotations

__all__: list[str] = []
