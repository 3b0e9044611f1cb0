"""The public contract: pydantic models of the JSON Hookstream reads and writes; JSON Schemas.

Depends on nothing of Hookstream but the base modules and the filter and template languages.
"""

from __future__ import annotations

__all__: list[str] = []
