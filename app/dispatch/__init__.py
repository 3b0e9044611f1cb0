"""Delivery core of the action dispatchers: signing, secrets, SSRF guard, retry policy, HTTP."""

from __future__ import annotations

__all__: list[str] = []
