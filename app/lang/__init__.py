"""The automation languages: the filter language ($eq, $in, $regex...) and `${}` templates.

Leaf code: it knows documents and strings, not Hookstream's models, so the contract's
validators can compile a filter or a template without importing the decision layer.
"""

from __future__ import annotations

__all__: list[str] = []
