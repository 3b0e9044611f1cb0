"""The management API on the worker's web server: automations, dry runs, events, history.

`app.api.routes.define_api` registers it; modules here import nothing from Faust's
worker at import time, so `app.api.openapi` can use them without a running app.
"""

from __future__ import annotations

__all__: list[str] = []
