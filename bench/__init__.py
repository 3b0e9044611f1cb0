"""Hookstream benchmarks (`make bench`): S0 raw ceiling to S4 memory, see bench/run.py."""

from __future__ import annotations

__all__: list[str] = []
