"""Hookstream: automations for ML artifact and model-registry events on Kafka."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
