"""`python -m app.cli`: the `hookstream` command."""

from __future__ import annotations

import sys

from app.cli.main import main

__all__: list[str] = []

sys.exit(main())
