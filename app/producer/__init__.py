"""The producer library: publish Hookstream events from Python (sync and asyncio).

    from app.producer import Producer

    with Producer(entity="acme", registry="model") as hookstream:
        hookstream.add_alias("fraud-detector", 3, "production")

Events are validated with the contract models before anything is sent (InvalidEventError
names the bad field) and produced where the workers read them (docs/contract.md
"Producer library").
"""

from __future__ import annotations

from app.producer.client import AsyncProducer, Producer, Published

__all__ = ["AsyncProducer", "Producer", "Published"]
